//! Image data on the filesystem: uploads stream into a temporary file while their checksums
//! and format are computed, and become the image's data only when complete (fsync, rename,
//! fsync of the directory). An interrupted or refused upload leaves no file behind.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use md5::Md5;
use sha2::{Digest, Sha512};
use tokio::io::AsyncWriteExt;

use crate::inspect::{Inspection, Inspector};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |err| StoreError::Io { action, path: path.to_path_buf(), err }
}

/// Image data as it is read back.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Where image data is kept. Uploads always stream through a local temporary file (where they
/// are hashed and inspected); a backend decides where a committed upload goes.
pub trait ImageStore: Send + Sync + 'static {
    /// Starts an upload for `image_id`, refusing more than `limit` bytes.
    fn begin<'a>(&'a self, image_id: &'a str, limit: u64) -> BoxFuture<'a, Result<Upload, StoreError>>;
    /// Makes a finished upload the image's data, durably.
    fn commit(&self, upload: Upload) -> BoxFuture<'_, Result<Stored, StoreError>>;
    /// `len` bytes of an image's data from `start`.
    fn read<'a>(&'a self, image_id: &'a str, start: u64, len: u64) -> BoxFuture<'a, Result<ByteStream, StoreError>>;
    /// Removes an image's data; missing data is not an error.
    fn delete<'a>(&'a self, image_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl ImageStore for FsStore {
    fn begin<'a>(&'a self, image_id: &'a str, limit: u64) -> BoxFuture<'a, Result<Upload, StoreError>> {
        Box::pin(FsStore::begin(self, image_id, limit))
    }
    fn commit(&self, upload: Upload) -> BoxFuture<'_, Result<Stored, StoreError>> {
        Box::pin(upload.commit())
    }
    fn read<'a>(&'a self, image_id: &'a str, start: u64, len: u64) -> BoxFuture<'a, Result<ByteStream, StoreError>> {
        Box::pin(FsStore::read(self, image_id, start, len))
    }
    fn delete<'a>(&'a self, image_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(FsStore::delete(self, image_id))
    }
}

/// Size of the chunks data is read back in.
const READ_CHUNK: usize = 256 * 1024;

/// Where image data lives: `<dir>/<image id>`, uploads in progress under `<dir>/tmp`.
#[derive(Clone, Debug)]
pub struct FsStore {
    dir: PathBuf,
}

/// What a completed upload holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    /// md5, hex (Glance's `checksum`).
    pub md5: String,
    /// sha512, hex (`os_hash_value`).
    pub sha512: String,
    pub inspection: Inspection,
}

impl FsStore {
    /// Opens the store, creating its directories and removing uploads a crash left behind.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<FsStore, StoreError> {
        let dir = dir.into();
        let tmp = dir.join("tmp");
        tokio::fs::create_dir_all(&tmp).await.map_err(io("create", &tmp))?;
        let mut entries = tokio::fs::read_dir(&tmp).await.map_err(io("read", &tmp))?;
        while let Some(e) = entries.next_entry().await.map_err(io("read", &tmp))? {
            let _ = tokio::fs::remove_file(e.path()).await;
        }
        Ok(FsStore { dir })
    }

    pub fn path(&self, image_id: &str) -> PathBuf {
        self.dir.join(image_id)
    }

    /// Starts an upload for `image_id`, refusing more than `limit` bytes.
    pub async fn begin(&self, image_id: &str, limit: u64) -> Result<Upload, StoreError> {
        let tmp = self.dir.join("tmp").join(format!("{image_id}.{}", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::File::create(&tmp).await.map_err(io("create", &tmp))?;
        Ok(Upload {
            file: Some(file),
            tmp,
            target: self.path(image_id),
            dir: self.dir.clone(),
            md5: Md5::new(),
            sha512: Sha512::new(),
            inspector: Inspector::new(),
            size: 0,
            limit,
            done: false,
        })
    }

    /// The ids of the images that have data here.
    pub async fn ids(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await.map_err(io("read", &self.dir))?;
        while let Some(e) = entries.next_entry().await.map_err(io("read", &self.dir))? {
            if e.file_type().await.is_ok_and(|t| t.is_file()) {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(out)
    }

    /// Streams `len` bytes of an image's data from `start`.
    pub async fn read(&self, image_id: &str, start: u64, len: u64) -> Result<ByteStream, StoreError> {
        let path = self.path(image_id);
        let mut file = tokio::fs::File::open(&path).await.map_err(io("open", &path))?;
        file.seek(std::io::SeekFrom::Start(start)).await.map_err(io("seek", &path))?;
        let stream = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; READ_CHUNK.min(left as usize)];
            match file.read(&mut buf).await {
                Ok(0) => Some((
                    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "image data is shorter than recorded")),
                    (file, 0),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
                }
                Err(e) => Some((Err(e), (file, 0))),
            }
        });
        Ok(Box::pin(stream))
    }

    /// Removes an image's data; a missing file is not an error.
    pub async fn delete(&self, image_id: &str) -> Result<(), StoreError> {
        let path = self.path(image_id);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::Io { action: "remove", path, err: e })
            }
            _ => Ok(()),
        }
    }
}

/// An upload in progress. Dropping it without [`Upload::commit`] removes the temporary file.
pub struct Upload {
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    md5: Md5,
    sha512: Sha512,
    inspector: Inspector,
    size: u64,
    limit: u64,
    done: bool,
}

impl Upload {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(StoreError::TooLarge { limit: self.limit });
        }
        self.md5.update(chunk);
        self.sha512.update(chunk);
        self.inspector.feed(chunk);
        let file = self.file.as_mut().expect("an upload's file is open until commit");
        file.write_all(chunk).await.map_err(io("write", &self.tmp))
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes what was written, so that other programs (qemu-img) can read the temporary
    /// file at [`Upload::tmp_path`].
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        let file = self.file.as_mut().expect("an upload's file is open until commit");
        file.flush().await.map_err(io("flush", &self.tmp))
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// What the bytes so far are; call before [`Upload::commit`] to decide whether to keep them.
    pub fn inspect(&self) -> Inspection {
        self.inspector.clone().finish()
    }

    /// Makes the upload the image's data, durably.
    pub async fn commit(mut self) -> Result<Stored, StoreError> {
        let mut file = self.file.take().expect("an upload's file is open until commit");
        file.flush().await.map_err(io("flush", &self.tmp))?;
        file.sync_all().await.map_err(io("sync", &self.tmp))?;
        drop(file);
        tokio::fs::rename(&self.tmp, &self.target).await.map_err(io("rename", &self.tmp))?;
        if let Ok(d) = tokio::fs::File::open(&self.dir).await {
            let _ = d.sync_all().await;
        }
        self.done = true;
        let inspector = std::mem::take(&mut self.inspector);
        Ok(Stored {
            size: self.size,
            md5: hex(&std::mem::take(&mut self.md5).finalize()),
            sha512: hex(&std::mem::take(&mut self.sha512).finalize()),
            inspection: inspector.finish(),
        })
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        std::env::temp_dir().join(format!("haneul-fsstore-{}", uuid::Uuid::new_v4()))
    }

    #[tokio::test]
    async fn a_committed_upload_has_its_bytes_and_checksums() {
        let d = dir();
        let store = FsStore::open(&d).await.unwrap();
        let mut up = store.begin("img", 1 << 20).await.unwrap();
        up.write(b"hello ").await.unwrap();
        up.write(b"world").await.unwrap();
        assert_eq!(up.inspect().format, crate::inspect::Format::Raw);
        let stored = up.commit().await.unwrap();
        assert_eq!(std::fs::read(store.path("img")).unwrap(), b"hello world");
        assert_eq!(stored.size, 11);
        assert_eq!(stored.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert!(stored.sha512.starts_with("309ecc489c12d6eb4cc40f50c902f2b4d0ed77ee511a7c7a9bcd3ca86d4cd86f"));
        assert_eq!(std::fs::read_dir(d.join("tmp")).unwrap().count(), 0);
        std::fs::remove_dir_all(d).ok();
    }

    #[tokio::test]
    async fn an_abandoned_upload_leaves_no_file() {
        let d = dir();
        let store = FsStore::open(&d).await.unwrap();
        let mut up = store.begin("img", 1 << 20).await.unwrap();
        up.write(b"partial").await.unwrap();
        drop(up);
        assert!(!store.path("img").exists());
        assert_eq!(std::fs::read_dir(d.join("tmp")).unwrap().count(), 0);
        std::fs::remove_dir_all(d).ok();
    }

    #[tokio::test]
    async fn an_upload_over_the_limit_is_refused() {
        let d = dir();
        let store = FsStore::open(&d).await.unwrap();
        let mut up = store.begin("img", 4).await.unwrap();
        assert!(matches!(up.write(b"12345").await, Err(StoreError::TooLarge { limit: 4 })));
        drop(up);
        assert!(!store.path("img").exists());
        std::fs::remove_dir_all(d).ok();
    }

    #[tokio::test]
    async fn leftovers_of_a_crash_are_removed_on_open() {
        let d = dir();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::write(d.join("tmp").join("img.1234"), b"x").unwrap();
        FsStore::open(&d).await.unwrap();
        assert_eq!(std::fs::read_dir(d.join("tmp")).unwrap().count(), 0);
        std::fs::remove_dir_all(d).ok();
    }
}
