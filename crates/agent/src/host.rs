//! What this host has to offer guests: CPUs, memory and the disk under the instances
//! directory, as the compute service reports them to placement.

use std::path::Path;

pub use haneul_contracts::agent::Resources;

/// Reads the host's resources; the disk is the file system holding `instances_dir`.
pub fn resources(instances_dir: &Path) -> std::io::Result<Resources> {
    let vcpus = std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1);
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let memory_kb: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("MemTotal missing from /proc/meminfo"))?;
    Ok(Resources { vcpus, memory_mb: memory_kb / 1024, disk_gb: disk_bytes(instances_dir)? >> 30 })
}

fn disk_bytes(dir: &Path) -> std::io::Result<i64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `st` a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_blocks as i64).saturating_mul(st.f_frsize as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_has_some_of_everything() {
        let r = resources(&std::env::temp_dir()).unwrap();
        assert!(r.vcpus >= 1 && r.memory_mb >= 64 && r.disk_gb >= 1, "{r:?}");
    }
}
