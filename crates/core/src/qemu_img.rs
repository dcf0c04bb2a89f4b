//! `qemu-img`, run from one place for every service that touches disk images: the image
//! service's second opinion on uploads ([`info_untrusted`]), the agents' disk copies and
//! growth ([`convert`], [`resize`]), and block storage's volumes to come.
//!
//! An image from a user is never probed: its format is always given (`-f`), and `info` on
//! one runs with its address space and CPU time capped (`prlimit`) and a wall-clock deadline.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Address space and CPU seconds allowed to one `qemu-img info` of an untrusted image, as
/// Nova allows.
const MAX_ADDRESS_SPACE: u64 = 1 << 30;
const MAX_CPU_SECONDS: u64 = 30;
const INFO_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum QemuImgError {
    #[error("could not run {program}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("qemu-img {what} did not finish within {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("qemu-img {what} failed: {stderr}")]
    Failed { what: &'static str, stderr: String },
    #[error("qemu-img info printed output that is not its JSON")]
    Output(#[source] serde_json::Error),
}

/// What `qemu-img info --output=json` says of an image.
#[derive(Debug, Deserialize)]
pub struct Info {
    pub format: String,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    #[serde(rename = "backing-filename")]
    pub backing_filename: Option<String>,
    #[serde(default)]
    pub encrypted: bool,
    #[serde(rename = "format-specific")]
    pub format_specific: Option<FormatSpecific>,
}

#[derive(Debug, Deserialize)]
pub struct FormatSpecific {
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Whether `qemu-img` and `prlimit` can be run here.
pub async fn available() -> bool {
    let runs = |prog: &'static str| async move {
        tokio::process::Command::new(prog)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    };
    runs("qemu-img").await && runs("prlimit").await
}

/// `qemu-img info` of an image a user gave, read as `format`, capped as the module says.
pub async fn info_untrusted(path: &Path, format: &str) -> Result<Info, QemuImgError> {
    let mut cmd = tokio::process::Command::new("prlimit");
    cmd.arg(format!("--as={MAX_ADDRESS_SPACE}"))
        .arg(format!("--cpu={MAX_CPU_SECONDS}"))
        .args(["--", "qemu-img", "info", "--output=json", "-f", format, "--force-share"])
        .arg(path)
        .kill_on_drop(true);
    let out = tokio::time::timeout(INFO_DEADLINE, cmd.output())
        .await
        .map_err(|_| QemuImgError::Timeout { what: "info", after: INFO_DEADLINE })?
        .map_err(|source| QemuImgError::Spawn { program: "prlimit", source })?;
    if !out.status.success() {
        return Err(QemuImgError::Failed { what: "info", stderr: String::from_utf8_lossy(&out.stderr).trim().into() });
    }
    serde_json::from_slice(&out.stdout).map_err(QemuImgError::Output)
}

/// Copies `src` (read as `src_format`) into a new `dst` of `dst_format`; `shared` reads an
/// image a running guest holds open (`-U`).
pub async fn convert(
    src: &Path,
    src_format: &str,
    dst: &Path,
    dst_format: &str,
    shared: bool,
) -> Result<(), QemuImgError> {
    let mut args = vec!["convert", "-q"];
    if shared {
        args.push("-U");
    }
    args.extend(["-f", src_format, "-O", dst_format]);
    run("convert", &args, &[src, dst]).await
}

/// Grows the image at `path` to `gib` GiB.
pub async fn resize(path: &Path, gib: u64) -> Result<(), QemuImgError> {
    let size = format!("{gib}G");
    let out = tokio::process::Command::new("qemu-img")
        .args(["resize", "-q"])
        .arg(path)
        .arg(&size)
        .output()
        .await
        .map_err(|source| QemuImgError::Spawn { program: "qemu-img", source })?;
    finished("resize", out)
}

async fn run(what: &'static str, args: &[&str], paths: &[&Path]) -> Result<(), QemuImgError> {
    let out = tokio::process::Command::new("qemu-img")
        .args(args)
        .args(paths)
        .output()
        .await
        .map_err(|source| QemuImgError::Spawn { program: "qemu-img", source })?;
    finished(what, out)
}

fn finished(what: &'static str, out: std::process::Output) -> Result<(), QemuImgError> {
    if out.status.success() {
        Ok(())
    } else {
        Err(QemuImgError::Failed { what, stderr: String::from_utf8_lossy(&out.stderr).trim().into() })
    }
}
