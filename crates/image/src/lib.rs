//! The image service: OpenStack Glance v2.
//!
//! Layers: [`api`] (HTTP shapes, policy checks) over [`service`] (visibility, quotas, the
//! upload pipeline) over [`model`] (images and members in a `core::docstore` snapshot) and
//! [`store`] (where image data lives). [`inspect`] and [`qemu`] decide what an upload really
//! is. See `docs/notes/image-service.md` for what the clients expect.
//!
//! Invariants:
//! - An upload's real format is decided from its bytes, never from what the client declared;
//!   a declared format that does not match, or content that fails a safety check (a qcow2
//!   backing file or external data file, a VMDK that names other files), is refused.
//! - Inspection reads a bounded part of the stream (the first MiB and the last 512 bytes), so
//!   memory does not grow with the image.
//! - Image data becomes visible only complete and durable (fsync, rename, fsync of the
//!   directory); an interrupted or refused upload leaves no file behind and its image
//!   `queued`, also across a crash (see [`service::Images::open`]).

pub mod api;
pub mod inspect;
pub mod model;
pub mod policy_defaults;
pub mod qemu;
pub mod service;
pub mod serving;
pub mod store;

pub use service::Images;
