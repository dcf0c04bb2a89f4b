//! The QEMU driver. One instance is one QEMU process, started daemonized with a pid file and
//! a QMP socket in the instance's directory, so that it outlives the agent: a restarted agent
//! finds it by its pid file (checking the process is QEMU running that instance's uuid) and
//! controls it again over QMP.
//!
//! Files in an instance directory: `qemu.pid`, `qmp.sock`, `console.sock` (the serial port,
//! interactive) and `console.log` (everything the guest printed on it).

pub mod configdrive;
pub mod console;
pub mod qcow2;
pub mod qemu;
pub mod qmp;

pub use qemu::{Accel, Domain, StopHow, VirtError};
