//! A second opinion on an upload from `qemu-img info`, run the way untrusted images must be:
//! the format given explicitly (`-f`, no probing), no image locks (`--force-share`), address
//! space and CPU time capped (`prlimit`), a wall-clock deadline, and only after the in-house
//! [`crate::inspect`] checks have passed (qemu-img opens the files a VMDK descriptor names).

use std::path::Path;

use haneul_core::qemu_img::{self, QemuImgError};

#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("qemu-img could not read the image")]
    Run(#[from] QemuImgError),
    #[error("{0}")]
    Unsafe(String),
}

/// Whether `qemu-img` and `prlimit` can be run here.
pub async fn available() -> bool {
    qemu_img::available().await
}

/// Runs `qemu-img info` on `path` as `format`; the virtual size when the image is safe.
pub async fn check(path: &Path, format: &str) -> Result<u64, QemuError> {
    let info = qemu_img::info_untrusted(path, format).await?;
    if info.format != format {
        return Err(QemuError::Unsafe(format!("qemu-img reads the image as {}, not {format}.", info.format)));
    }
    if info.backing_filename.is_some() {
        return Err(QemuError::Unsafe("the image has a backing file.".into()));
    }
    if info.encrypted {
        return Err(QemuError::Unsafe("the image is encrypted.".into()));
    }
    if let Some(fs) = &info.format_specific {
        if fs.data.get("data-file").is_some() {
            return Err(QemuError::Unsafe("the image has an external data file.".into()));
        }
        if fs.data.get("corrupt").and_then(serde_json::Value::as_bool) == Some(true) {
            return Err(QemuError::Unsafe("the image is marked corrupt.".into()));
        }
    }
    Ok(info.virtual_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_img(args: &[&str]) {
        let ok = std::process::Command::new("qemu-img").args(args).status().expect("qemu-img runs").success();
        assert!(ok, "qemu-img {args:?} failed");
    }

    #[tokio::test]
    async fn a_plain_qcow2_passes_with_its_virtual_size() {
        let dir = std::env::temp_dir().join(format!("haneul-qemu-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", p.to_str().unwrap(), "64M"]);
        assert_eq!(check(&p, "qcow2").await.unwrap(), 64 << 20);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_qcow2_with_a_backing_file_or_another_format_is_refused() {
        let dir = std::env::temp_dir().join(format!("haneul-qemu-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("base.qcow2");
        let over = dir.join("over.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "64M"]);
        qemu_img(&["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base.to_str().unwrap(), over.to_str().unwrap()]);
        assert!(matches!(check(&over, "qcow2").await, Err(QemuError::Unsafe(_))));
        assert!(matches!(check(&base, "vmdk").await, Err(QemuError::Run(QemuImgError::Failed { .. }))));
        std::fs::remove_dir_all(dir).ok();
    }
}
