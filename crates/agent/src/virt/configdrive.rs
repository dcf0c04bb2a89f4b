//! Config drives: an ISO 9660 image labelled `config-2` holding the files the compute service
//! renders (`openstack/latest/meta_data.json`, `user_data`, `network_data.json`, ...), built
//! with genisoimage as Nova builds them.

use std::path::Path;

use haneul_core::error::FileError;

#[derive(Debug, thiserror::Error)]
pub enum ConfigDriveError {
    #[error("config drive file name {0:?} is not a plain relative path")]
    BadPath(String),
    #[error(transparent)]
    Io(#[from] haneul_core::error::FileError),
    #[error("could not run genisoimage (Debian: genisoimage)")]
    Spawn(#[source] std::io::Error),
    #[error("genisoimage failed: {0}")]
    Failed(String),
}

/// Writes `files` (relative path, contents) into an ISO at `target`; a staging directory next
/// to it is removed afterwards.
pub async fn build(target: &Path, files: &[(String, Vec<u8>)]) -> Result<(), ConfigDriveError> {
    let staging = target.with_extension("staging");
    let _ = std::fs::remove_dir_all(&staging);
    let result = build_in(&staging, target, files).await;
    let _ = std::fs::remove_dir_all(&staging);
    result
}

async fn build_in(staging: &Path, target: &Path, files: &[(String, Vec<u8>)]) -> Result<(), ConfigDriveError> {
    let io = |what, path: &Path| FileError::at(what, path);
    for (name, data) in files {
        let rel = Path::new(name);
        let plain = rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain || name.is_empty() {
            return Err(ConfigDriveError::BadPath(name.clone()));
        }
        let path = staging.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        std::fs::write(&path, data).map_err(io("write", &path))?;
    }
    std::fs::create_dir_all(staging).map_err(io("create", staging))?;
    let out = tokio::process::Command::new("genisoimage")
        .args(["-quiet", "-J", "-r", "-l", "-ldots", "-allow-lowercase", "-allow-multidot", "-publisher", "haneul"])
        .args(["-V", "config-2", "-o"])
        .arg(target)
        .arg(staging)
        .output()
        .await
        .map_err(ConfigDriveError::Spawn)?;
    if !out.status.success() {
        return Err(ConfigDriveError::Failed(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paths_outside_the_drive_are_refused() {
        let dir = std::env::temp_dir().join(format!("haneul-cd-{}", std::process::id()));
        for bad in ["../x", "/etc/passwd", "a/../../b", ""] {
            let r = build(&dir.join("cd.iso"), &[(bad.to_string(), b"x".to_vec())]).await;
            assert!(matches!(r, Err(ConfigDriveError::BadPath(_))), "{bad}: {r:?}");
        }
        assert!(!dir.join("cd.staging").exists());
    }
}
