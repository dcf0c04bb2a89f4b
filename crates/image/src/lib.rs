//! The image service: OpenStack Glance v2 (issue 3, in progress).
//!
//! What is here so far: [`inspect`], the streaming format inspector every upload goes through
//! before an image may become active, [`qemu`], the `qemu-img info` second opinion run under
//! limits, and [`store`], the filesystem store uploads stream into.
//! The API and the image records follow; see `docs/notes/image-service.md` for the plan.
//!
//! Invariants:
//! - An upload's real format is decided from its bytes, never from what the client declared;
//!   a declared format that does not match, or content that fails a safety check (a qcow2
//!   backing file or external data file, a VMDK that names other files), is refused.
//! - Inspection reads a bounded part of the stream (the first MiB and the last 512 bytes), so
//!   memory does not grow with the image.
//! - Image data becomes visible only complete and durable (fsync, rename, fsync of the
//!   directory); an interrupted or refused upload leaves no file behind.

pub mod inspect;
pub mod qemu;
pub mod store;
