//! The serial console log. QEMU appends to it forever and rotates nothing, so the agent caps
//! it: past the limit, the file keeps its newest half.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Cuts `log` to its newest `max / 2` bytes (from a line start) when it is over `max`. The file
/// is changed in place, since QEMU keeps it open (in append mode); output QEMU writes while
/// the tail is copied can be lost. Returns whether it cut.
pub fn cap(log: &Path, max: u64) -> std::io::Result<bool> {
    let mut f = match std::fs::OpenOptions::new().read(true).write(true).open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len <= max {
        return Ok(false);
    }
    let keep = max / 2;
    f.seek(SeekFrom::Start(len - keep))?;
    let mut tail = Vec::with_capacity(keep as usize);
    f.read_to_end(&mut tail)?;
    let start = tail.iter().position(|b| *b == b'\n').map_or(0, |p| p + 1);
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&tail[start..])?;
    Ok(true)
}

/// The last `lines` lines of the log (all of it when `None`), as `os-getConsoleOutput` gives.
pub fn tail(log: &Path, lines: Option<usize>) -> std::io::Result<String> {
    let text = match std::fs::read(log) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    Ok(match lines {
        None => text,
        Some(n) => {
            let all: Vec<&str> = text.split_inclusive('\n').collect();
            all[all.len().saturating_sub(n)..].concat()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_log_keeps_its_newest_half_from_a_line_start() {
        let p = std::env::temp_dir().join(format!("haneul-console-{}.log", std::process::id()));
        let text: String = (0..1000).map(|i| format!("line {i:04}\n")).collect();
        std::fs::write(&p, &text).unwrap();
        assert!(!cap(&p, 20_000).unwrap());
        assert!(cap(&p, 4_000).unwrap());
        let kept = std::fs::read_to_string(&p).unwrap();
        assert!(kept.len() <= 2_000 && kept.starts_with("line ") && kept.ends_with("line 0999\n"), "{kept}");
        assert_eq!(tail(&p, Some(2)).unwrap(), "line 0998\nline 0999\n");
        std::fs::remove_file(&p).ok();
        assert_eq!(tail(&p, Some(5)).unwrap(), "");
    }
}
