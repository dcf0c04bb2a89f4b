//! qcow2 overlays written directly: an empty copy-on-write image over a cached base image,
//! what `qemu-img create -f qcow2 -b <base> -F <format>` makes, without starting a process
//! per build (that process was a third of an instance's time in its build slot).
//!
//! The file is four parts, each in a cluster of its own as qemu-img lays them out: the
//! header (version 3, with the backing format in a header extension and the backing file's
//! name after it), the refcount table, one refcount block, and the L1 table, all of whose
//! entries are zero (nothing written yet: every read goes to the base).

use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 4] = b"QFI\xfb";
const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// 16-bit refcounts (2^4 bits), as qemu-img writes them.
const REFCOUNT_ORDER: u32 = 4;
/// The version-3 header's own length (to `header_length` inclusive).
const HEADER_LEN: u32 = 104;
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
/// Guest bytes one L1 entry covers: an L2 table of 8-byte entries, each a cluster.
const L1_ENTRY_SPAN: u64 = CLUSTER * (CLUSTER / 8);
/// The largest L1 table QEMU opens (QCOW_MAX_L1_SIZE, 32 MiB, in 8-byte entries): 2 PiB.
const MAX_L1_ENTRIES: u64 = (32 << 20) / 8;

#[derive(Debug, thiserror::Error)]
pub enum Qcow2Error {
    /// Reading or writing an image file: what was done to which file.
    #[error("{what} {}", .path.display())]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The virtual size of an image: a qcow2 header's size field, or a raw file's length.
pub fn virtual_size(path: &Path, format: &str) -> Result<u64, Qcow2Error> {
    let io = |source| Qcow2Error::Io { what: "reading", path: path.to_path_buf(), source };
    match format {
        "raw" => Ok(std::fs::metadata(path).map_err(io)?.len()),
        "qcow2" => {
            use std::io::Read;
            let mut head = [0u8; 32];
            std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).map_err(io)?;
            if &head[..4] != MAGIC {
                return Err(Qcow2Error::Invalid(format!("{} is not a qcow2 image", path.display())));
            }
            Ok(u64::from_be_bytes(head[24..32].try_into().unwrap()))
        }
        other => Err(Qcow2Error::Invalid(format!("disk format {other} cannot back an overlay"))),
    }
}

/// The bytes of an empty overlay of `size` bytes over `backing` (a file of `backing_format`).
pub fn overlay(backing: &str, backing_format: &str, size: u64) -> Result<Vec<u8>, Qcow2Error> {
    // The header, its extensions and the backing file's name share the first cluster.
    let ext_len = 8 + pad8(backing_format.len()) + 8;
    let name_at = HEADER_LEN as usize + ext_len;
    if backing.is_empty() || name_at + backing.len() > CLUSTER as usize || backing.len() > 1023 {
        return Err(Qcow2Error::Invalid(format!("backing file name {backing:?} is empty or too long")));
    }
    // Whole sectors, as qemu-img rounds (QEMU sees size / 512 sectors).
    let size = size.checked_next_multiple_of(512).unwrap_or(u64::MAX);
    let l1_size = size.div_ceil(L1_ENTRY_SPAN);
    if l1_size > MAX_L1_ENTRIES {
        return Err(Qcow2Error::Invalid(format!("{size} bytes is too large an image")));
    }
    let l1_bytes = l1_size * 8;
    // At most 512 clusters of L1 table: the one refcount block (32768 entries) counts them all.
    let l1_clusters = l1_bytes.div_ceil(CLUSTER);
    let clusters = 3 + l1_clusters;
    let (refcount_table, refcount_block) = (CLUSTER, 2 * CLUSTER);
    // An empty image has no L1 table at all.
    let l1_table = if l1_size == 0 { 0 } else { 3 * CLUSTER };

    let mut out = Vec::with_capacity((3 * CLUSTER + l1_bytes) as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&3u32.to_be_bytes()); // version
    out.extend_from_slice(&(name_at as u64).to_be_bytes()); // backing_file_offset
    out.extend_from_slice(&(backing.len() as u32).to_be_bytes()); // backing_file_size
    out.extend_from_slice(&CLUSTER_BITS.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // crypt_method
    out.extend_from_slice(&(l1_size as u32).to_be_bytes());
    out.extend_from_slice(&l1_table.to_be_bytes());
    out.extend_from_slice(&refcount_table.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes()); // refcount_table_clusters
    out.extend_from_slice(&0u32.to_be_bytes()); // nb_snapshots
    out.extend_from_slice(&0u64.to_be_bytes()); // snapshots_offset
    out.extend_from_slice(&0u64.to_be_bytes()); // incompatible_features
    out.extend_from_slice(&0u64.to_be_bytes()); // compatible_features
    out.extend_from_slice(&0u64.to_be_bytes()); // autoclear_features
    out.extend_from_slice(&REFCOUNT_ORDER.to_be_bytes());
    out.extend_from_slice(&HEADER_LEN.to_be_bytes());
    debug_assert_eq!(out.len(), HEADER_LEN as usize);
    out.extend_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
    out.extend_from_slice(&(backing_format.len() as u32).to_be_bytes());
    out.extend_from_slice(backing_format.as_bytes());
    out.resize(out.len() + pad8(backing_format.len()) - backing_format.len(), 0);
    out.extend_from_slice(&[0u8; 8]); // end of the extensions
    debug_assert_eq!(out.len(), name_at);
    out.extend_from_slice(backing.as_bytes());

    out.resize(refcount_table as usize, 0);
    out.extend_from_slice(&refcount_block.to_be_bytes());
    out.resize(refcount_block as usize, 0);
    for _ in 0..clusters {
        out.extend_from_slice(&1u16.to_be_bytes());
    }
    out.resize(3 * CLUSTER as usize, 0);
    // The L1 table, all zero; the file ends with it as qemu-img's does.
    out.resize((3 * CLUSTER + l1_bytes) as usize, 0);
    Ok(out)
}

/// Writes an empty overlay at `path` (replacing any file there), on disk before it returns:
/// the caller renames it into place, and a host crash must not leave a half-written overlay
/// under the instance's disk name.
pub fn create(path: &Path, backing: &Path, backing_format: &str, size: u64) -> Result<(), Qcow2Error> {
    let backing = backing.to_str().ok_or_else(|| Qcow2Error::Invalid(format!("{} is not UTF-8", backing.display())))?;
    let bytes = overlay(backing, backing_format, size)?;
    let io = |source| Qcow2Error::Io { what: "writing", path: path.to_path_buf(), source };
    std::fs::File::create(path).and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync_all())).map_err(io)
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_img(args: &[&str]) -> String {
        let out = std::process::Command::new("qemu-img").args(args).output().expect("qemu-img (Debian: qemu-utils)");
        assert!(out.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// qemu-img reads what is written as its own overlay: clean, the asked size, the backing
    /// file and format; and a guest write lands in it while reads of the rest see the base.
    #[test]
    fn qemu_img_reads_the_overlay() {
        let dir = std::env::temp_dir().join(format!("haneul-qcow2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("base.raw");
        let mut data = vec![0u8; 3 << 20];
        data[(2 << 20) + 5] = 0x5a;
        std::fs::write(&base, &data).unwrap();
        // The last one is the middle of the chain below.
        for (size, format, base) in [
            (0u64, "raw", base.clone()),
            (1 << 30, "raw", base.clone()),
            (20 << 30, "raw", base.clone()),
            (virtual_size(&base, "raw").unwrap(), "raw", base.clone()),
        ] {
            let disk = dir.join("disk");
            create(&disk, &base, format, size).unwrap();
            qemu_img(&["check", "-q", disk.to_str().unwrap()]);
            let info: serde_json::Value =
                serde_json::from_str(&qemu_img(&["info", "--output", "json", disk.to_str().unwrap()])).unwrap();
            assert_eq!(info["virtual-size"], size, "{info}");
            assert_eq!(info["backing-filename"], base.to_str().unwrap());
            assert_eq!(info["backing-filename-format"], format);
            assert_eq!(info["format-specific"]["data"]["compat"], "1.1");
        }
        // An overlay over an overlay, with a write through QEMU's I/O layer.
        let top = dir.join("top");
        let mid = dir.join("disk");
        create(&top, &mid, "qcow2", virtual_size(&mid, "qcow2").unwrap()).unwrap();
        qemu_img(&["check", "-q", top.to_str().unwrap()]);
        let out = std::process::Command::new("qemu-io")
            .args(["-f", "qcow2", "-c", "write -P 0x33 0 64k", "-c", "read -P 0x33 0 64k", "-c", "read -P 0 64k 64k"])
            .arg(&top)
            .output()
            .expect("qemu-io (Debian: qemu-utils)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && !text.contains("fail"), "{text}");
        qemu_img(&["check", "-q", top.to_str().unwrap()]);
        let raw = dir.join("flat.raw");
        qemu_img(&["convert", "-O", "raw", top.to_str().unwrap(), raw.to_str().unwrap()]);
        let flat = std::fs::read(&raw).unwrap();
        assert_eq!(flat[(2 << 20) + 5], 0x5a, "the base's bytes show through");
        assert_eq!(flat[..65536], [0x33u8; 65536][..], "qemu-io's write is in the overlay");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_and_sizes_out_of_reach_are_refused() {
        assert!(overlay("", "raw", 1 << 30).is_err());
        assert!(overlay(&"x".repeat(2000), "raw", 1 << 30).is_err());
        assert!(overlay("/b", "raw", u64::MAX).is_err());
        assert!(overlay("/b", "raw", 2 << 50).is_ok());
        assert!(overlay("/b", "raw", (2 << 50) + 1).is_err());
        // Sizes are whole sectors.
        let odd = overlay("/b", "raw", 1000).unwrap();
        assert_eq!(u64::from_be_bytes(odd[24..32].try_into().unwrap()), 1024);
        assert!(virtual_size(Path::new("/nonexistent"), "raw").is_err());
        assert!(virtual_size(Path::new("/nonexistent"), "vmdk").is_err());
    }
}
