//! Streaming disk-format inspection of uploads, with the safety checks that keep host files
//! from leaking through images (qcow2 backing and external data files, VMDK extents that
//! name other files).
//!
//! Feed every chunk of an upload to an [`Inspector`]; at the end, [`Inspector::finish`] says
//! what the bytes are, and [`decide`] whether an image declared with a disk and container
//! format may hold them. The rules follow Glance's: the format is enforced only for
//! `container_format=bare`; content that looks raw is accepted for `ami`/`aki`/`ari`; content
//! declared `raw` is accepted whatever it looks like, but the safety checks of the detected
//! format always run.

use std::fmt;

/// How much of the start of a stream is kept: enough for every header we read (ISO's volume
/// descriptor at 32 KiB, a VMDK descriptor of up to 1 MiB after its 512-byte header).
const HEAD: usize = 1 << 20;
const TAIL: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
    Vmdk,
    Vhd,
    Vhdx,
    Vdi,
    Iso,
    Qed,
    Luks,
}

impl Format {
    /// The `disk_format` name Glance uses.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Vdi => "vdi",
            Format::Iso => "iso",
            Format::Qed => "qed",
            Format::Luks => "luks",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the bytes of an upload are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    pub format: Format,
    /// The disk size the image describes (the byte count for raw), when the header says.
    pub virtual_size: Option<u64>,
    /// Why the content must not be used, if it must not.
    pub unsafe_reason: Option<String>,
    pub size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("Image disk_format {declared} does not match its content, which is {detected}.")]
    Mismatch { declared: String, detected: Format },
    #[error("Image failed safety checks: {0}")]
    Unsafe(String),
}

/// Collects the parts of a stream that inspection needs.
#[derive(Clone, Default)]
pub struct Inspector {
    head: Vec<u8>,
    tail: Vec<u8>,
    size: u64,
}

impl Inspector {
    pub fn new() -> Inspector {
        Inspector::default()
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        if self.head.len() < HEAD {
            let take = (HEAD - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        if chunk.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - TAIL..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(TAIL);
            self.tail.drain(..excess);
        }
    }

    pub fn finish(self) -> Inspection {
        let h = &self.head;
        let mut found: Vec<(Format, Option<u64>, Option<String>)> = Vec::new();
        if h.starts_with(b"QFI\xfb") {
            found.push(qcow2(h));
        }
        if h.starts_with(b"KDMV") || h.starts_with(b"# Disk DescriptorFile") {
            found.push(vmdk(h, &self.tail));
        }
        if h.starts_with(b"conectix") {
            found.push((Format::Vhd, be64(h, 40), None));
        }
        if h.starts_with(b"vhdxfile") {
            found.push((Format::Vhdx, None, None));
        }
        if le32(h, 0x40) == Some(0xBEDA_107F) {
            found.push((Format::Vdi, le64(h, 0x170), None));
        }
        if h.starts_with(b"QED\0") {
            found.push((Format::Qed, None, Some("QED images are not accepted.".into())));
        }
        if h.starts_with(b"LUKS\xba\xbe") {
            let reason = (be16(h, 6) != Some(1)).then(|| "only LUKS version 1 is accepted.".to_string());
            found.push((Format::Luks, None, reason));
        }
        if h.len() >= 0x8006 && matches!(&h[0x8001..0x8006], b"CD001" | b"NSR02" | b"NSR03") {
            let blocks = le32(h, 0x8050).map(u64::from);
            let block_size = le16(h, 0x8080).map(u64::from);
            found.push((Format::Iso, blocks.zip(block_size).map(|(a, b)| a * b), None));
        }
        match found.len() {
            0 => {
                Inspection { format: Format::Raw, virtual_size: Some(self.size), unsafe_reason: None, size: self.size }
            }
            1 => {
                let (format, virtual_size, unsafe_reason) = found.remove(0);
                Inspection { format, virtual_size, unsafe_reason, size: self.size }
            }
            _ => {
                let names: Vec<&str> = found.iter().map(|f| f.0.name()).collect();
                Inspection {
                    format: found[0].0,
                    virtual_size: None,
                    unsafe_reason: Some(format!("the content matches several formats ({}).", names.join(", "))),
                    size: self.size,
                }
            }
        }
    }
}

/// Whether an image declared with `disk_format` and `container_format` may hold content
/// `insp`; the image's virtual size when it may.
pub fn decide(disk_format: &str, container_format: &str, insp: &Inspection) -> Result<Option<u64>, Refusal> {
    if let Some(reason) = &insp.unsafe_reason {
        return Err(Refusal::Unsafe(reason.clone()));
    }
    if container_format != "bare" {
        return Ok(None);
    }
    let raw_like = matches!(disk_format, "ami" | "ari" | "aki" | "ploop");
    if disk_format == insp.format.name() || (raw_like && insp.format == Format::Raw) {
        return Ok(insp.virtual_size);
    }
    if disk_format == "raw" {
        return Ok(Some(insp.size));
    }
    Err(Refusal::Mismatch { declared: disk_format.to_string(), detected: insp.format })
}

fn qcow2(h: &[u8]) -> (Format, Option<u64>, Option<String>) {
    let size = be64(h, 24);
    let refuse = |r: &str| (Format::Qcow2, size, Some(r.to_string()));
    let Some(version) = be32(h, 4) else { return refuse("the qcow2 header is truncated.") };
    if !(2..=3).contains(&version) {
        return refuse("only qcow2 versions 2 and 3 are accepted.");
    }
    if be64(h, 8).is_none_or(|off| off != 0) {
        return refuse("qcow2 images with a backing file are not accepted.");
    }
    if be32(h, 32).is_none_or(|crypt| crypt != 0) {
        return refuse("encrypted qcow2 images are not accepted.");
    }
    if version == 3 {
        let Some(incompatible) = be64(h, 72) else { return refuse("the qcow2 header is truncated.") };
        if incompatible & (1 << 2) != 0 {
            return refuse("qcow2 images with an external data file are not accepted.");
        }
        if incompatible >> 4 != 0 {
            return refuse("the qcow2 image uses incompatible features this service does not know.");
        }
        // Header extensions follow the header; a data-file name is refused even without the bit.
        let mut off = be32(h, 100).unwrap_or(104) as usize;
        while let (Some(kind), Some(len)) = (be32(h, off), be32(h, off + 4)) {
            if kind == 0 {
                break;
            }
            if kind == 0x4441_5441 {
                return refuse("qcow2 images with an external data file are not accepted.");
            }
            off += 8 + (len as usize).div_ceil(8) * 8;
            if off > h.len() {
                break;
            }
        }
    }
    (Format::Qcow2, size, None)
}

fn vmdk(h: &[u8], tail: &[u8]) -> (Format, Option<u64>, Option<String>) {
    let refuse = |r: &str| (Format::Vmdk, None, Some(r.to_string()));
    if !h.starts_with(b"KDMV") {
        return refuse("a VMDK descriptor without its data (flat or split VMDK) is not accepted.");
    }
    let mut capacity = le64(h, 12).map(|s| s * 512);
    let mut desc_offset = le64(h, 28);
    let mut desc_size = le64(h, 36);
    if le64(h, 56) == Some(u64::MAX) {
        // The grain directory is in the footer: the second-to-last sector holds its header.
        if tail.len() == TAIL && tail.starts_with(b"KDMV") {
            capacity = le64(tail, 12).map(|s| s * 512);
            desc_offset = le64(tail, 28);
            desc_size = le64(tail, 36);
        }
    }
    let (Some(off), Some(size)) = (desc_offset, desc_size) else { return refuse("the VMDK header is truncated.") };
    if off != 1 || size == 0 || size > 2048 {
        return refuse("the VMDK descriptor is not where a sparse VMDK keeps it.");
    }
    let start = 512usize;
    let end = (start + size as usize * 512).min(h.len());
    let text = String::from_utf8_lossy(&h[start..end]);
    let text = text.trim_end_matches('\0');
    let mut extents = 0;
    let mut create_type = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(v) = line.strip_prefix("createType=") {
            create_type = Some(v.trim_matches('"').to_string());
        } else if line.starts_with("RW ") || line.starts_with("RDONLY ") || line.starts_with("NOACCESS ") {
            extents += 1;
            let name = line.split('"').nth(1).unwrap_or("");
            if name.contains('/') {
                return refuse("a VMDK extent that names a path is not accepted.");
            }
        } else if !line.contains('=') {
            return refuse("the VMDK descriptor has lines this service does not understand.");
        }
    }
    match create_type.as_deref() {
        Some("monolithicSparse") | Some("streamOptimized") => {}
        _ => return refuse("only monolithicSparse and streamOptimized VMDK images are accepted."),
    }
    if extents == 0 {
        return refuse("the VMDK descriptor names no extent.");
    }
    (Format::Vmdk, capacity, None)
}

fn bytes<const N: usize>(h: &[u8], off: usize) -> Option<[u8; N]> {
    h.get(off..off + N)?.try_into().ok()
}
fn be16(h: &[u8], off: usize) -> Option<u16> {
    bytes(h, off).map(u16::from_be_bytes)
}
fn be32(h: &[u8], off: usize) -> Option<u32> {
    bytes(h, off).map(u32::from_be_bytes)
}
fn be64(h: &[u8], off: usize) -> Option<u64> {
    bytes(h, off).map(u64::from_be_bytes)
}
fn le16(h: &[u8], off: usize) -> Option<u16> {
    bytes(h, off).map(u16::from_le_bytes)
}
fn le32(h: &[u8], off: usize) -> Option<u32> {
    bytes(h, off).map(u32::from_le_bytes)
}
fn le64(h: &[u8], off: usize) -> Option<u64> {
    bytes(h, off).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect_in_chunks(data: &[u8], chunk: usize) -> Inspection {
        let mut i = Inspector::new();
        for c in data.chunks(chunk.max(1)) {
            i.feed(c);
        }
        i.finish()
    }

    /// A qcow2 v3 header: 1 GiB virtual size, optional backing file and incompatible bits.
    fn qcow2_header(backing_offset: u64, incompatible: u64) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[0..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[8..16].copy_from_slice(&backing_offset.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        h[72..80].copy_from_slice(&incompatible.to_be_bytes());
        h[100..104].copy_from_slice(&104u32.to_be_bytes());
        h
    }

    #[test]
    fn plain_bytes_are_raw_with_their_length_as_virtual_size() {
        let data = vec![7u8; 10_000];
        let i = inspect_in_chunks(&data, 333);
        assert_eq!((i.format, i.virtual_size, i.size), (Format::Raw, Some(10_000), 10_000));
        assert_eq!(decide("raw", "bare", &i), Ok(Some(10_000)));
    }

    #[test]
    fn qcow2_is_detected_whatever_the_chunk_size() {
        for chunk in [1, 7, 512, 65_536] {
            let i = inspect_in_chunks(&qcow2_header(0, 0), chunk);
            assert_eq!(i.format, Format::Qcow2);
            assert_eq!(i.virtual_size, Some(1 << 30));
        }
    }

    #[test]
    fn qcow2_with_a_backing_file_is_refused_even_when_declared_raw() {
        let i = inspect_in_chunks(&qcow2_header(512, 0), 4096);
        assert!(matches!(decide("qcow2", "bare", &i), Err(Refusal::Unsafe(_))));
        assert!(matches!(decide("raw", "bare", &i), Err(Refusal::Unsafe(_))));
        assert!(matches!(decide("qcow2", "ovf", &i), Err(Refusal::Unsafe(_))));
    }

    #[test]
    fn qcow2_with_an_external_data_file_is_refused() {
        let i = inspect_in_chunks(&qcow2_header(0, 1 << 2), 4096);
        assert!(matches!(decide("qcow2", "bare", &i), Err(Refusal::Unsafe(_))));
    }

    #[test]
    fn qcow2_data_file_extension_is_refused_without_the_feature_bit() {
        let mut h = qcow2_header(0, 0);
        h[104..108].copy_from_slice(&0x4441_5441u32.to_be_bytes());
        h[108..112].copy_from_slice(&8u32.to_be_bytes());
        let i = inspect_in_chunks(&h, 4096);
        assert!(matches!(decide("qcow2", "bare", &i), Err(Refusal::Unsafe(_))));
    }

    #[test]
    fn declared_format_must_match_content_for_bare_containers() {
        let i = inspect_in_chunks(&qcow2_header(0, 0), 4096);
        assert_eq!(
            decide("vmdk", "bare", &i),
            Err(Refusal::Mismatch { declared: "vmdk".into(), detected: Format::Qcow2 })
        );
        let raw = inspect_in_chunks(&[1u8; 100], 10);
        assert!(matches!(decide("qcow2", "bare", &raw), Err(Refusal::Mismatch { .. })));
        assert_eq!(decide("qcow2", "ovf", &raw), Ok(None));
    }

    #[test]
    fn raw_content_is_accepted_for_kernel_and_ramdisk_formats() {
        let raw = inspect_in_chunks(&[1u8; 100], 10);
        for f in ["ami", "aki", "ari"] {
            assert_eq!(decide(f, "bare", &raw), Ok(Some(100)));
        }
    }

    #[test]
    fn vmdk_descriptor_alone_is_refused() {
        let text = b"# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/shadow\" 0\n";
        let i = inspect_in_chunks(text, 16);
        assert_eq!(i.format, Format::Vmdk);
        assert!(matches!(decide("vmdk", "bare", &i), Err(Refusal::Unsafe(_))));
    }

    #[test]
    fn truncated_headers_do_not_panic() {
        for n in 0..128 {
            let _ = inspect_in_chunks(&qcow2_header(0, 0)[..n], 3);
            let mut v = b"KDMV".to_vec();
            v.resize(n, 0);
            let _ = inspect_in_chunks(&v, 5);
        }
    }

    #[test]
    fn images_made_by_qemu_img_are_recognized() {
        let dir = std::env::temp_dir().join(format!("haneul-inspect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            ("qcow2", Format::Qcow2),
            ("vmdk", Format::Vmdk),
            ("vpc", Format::Vhd),
            ("vdi", Format::Vdi),
            ("vhdx", Format::Vhdx),
        ];
        for (fmt, want) in cases {
            let path = dir.join(format!("disk.{fmt}"));
            // qemu-img is installed by tests/run-all.sh (Debian's qemu-utils).
            let status = std::process::Command::new("qemu-img")
                .args(["create", "-q", "-f", fmt])
                .arg(&path)
                .arg("64M")
                .status()
                .expect("qemu-img runs");
            assert!(status.success(), "qemu-img create -f {fmt} failed");
            let data = std::fs::read(&path).unwrap();
            let i = inspect_in_chunks(&data, 65_536);
            assert_eq!(i.format, want, "{fmt}");
            assert_eq!(i.unsafe_reason, None, "{fmt}");
        }
        let base = dir.join("base.qcow2");
        let over = dir.join("over.qcow2");
        std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&base)
            .arg("64M")
            .status()
            .unwrap();
        std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(&base)
            .arg(&over)
            .status()
            .unwrap();
        let i = inspect_in_chunks(&std::fs::read(&over).unwrap(), 4096);
        assert!(matches!(decide("qcow2", "bare", &i), Err(Refusal::Unsafe(_))));
        std::fs::remove_dir_all(dir).ok();
    }
}
