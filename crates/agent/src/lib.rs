//! The host agent: everything that touches this host's hypervisor (and later its network data
//! plane and volumes). Side effects on the host live here and nowhere else.
//!
//! So far: [`virt`], the QEMU driver: one QEMU process per instance, controlled over QMP,
//! surviving the agent's restart (instances are adopted, not restarted); [`host`], what
//! this host offers guests.

pub mod host;
pub mod virt;
