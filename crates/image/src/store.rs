//! Image data on the filesystem: uploads stream into a temporary file while their checksums
//! and format are computed, and become the image's data only when complete (fsync, rename,
//! fsync of the directory). An interrupted or refused upload leaves no file behind.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use md5::Md5;
use sha2::{Digest, Sha512};

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
const READ_CHUNK: usize = 1 << 20;

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
        let file = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        Ok(Upload {
            writer: Some(Stage::spawn(WriterThread {
                file: std::io::BufWriter::with_capacity(WRITE_BUFFER, file),
                written: 0,
                flushed: 0,
            })),
            md5: Some(Stage::spawn(HashThread(Md5::new()))),
            sha512: Some(Stage::spawn(HashThread(Sha512::new()))),
            tmp,
            target: self.path(image_id),
            dir: self.dir.clone(),
            inspector: Inspector::new(),
            pending: bytes::BytesMut::new(),
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

    /// Streams `len` bytes of an image's data from `start`. A thread reads ahead (up to
    /// [`READ_AHEAD`] chunks) while the previous chunks are being sent.
    pub async fn read(&self, image_id: &str, start: u64, len: u64) -> Result<ByteStream, StoreError> {
        let path = self.path(image_id);
        let mut file = std::fs::File::open(&path).map_err(io("open", &path))?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start)).map_err(io("seek", &path))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
        std::thread::spawn(move || {
            let mut left = len;
            while left > 0 {
                let mut buf = vec![0u8; READ_CHUNK.min(left as usize)];
                let item = match std::io::Read::read(&mut file, &mut buf) {
                    Ok(0) => Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "image data is shorter than recorded",
                    )),
                    Ok(n) => {
                        buf.truncate(n);
                        left -= n as u64;
                        Ok(Bytes::from(buf))
                    }
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                // The receiver is gone when the client stopped reading.
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
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
///
/// Its work runs on three threads so that an upload is not bound by one core: one writes the
/// file (through a 1 MiB buffer, sending it to the disk as it goes), one computes the md5,
/// one the sha512. Chunks reach
/// them through bounded channels, so memory stays bounded when the disk is slower than the
/// network.
pub struct Upload {
    writer: Option<Stage<WriterThread>>,
    md5: Option<Stage<HashThread<Md5>>>,
    sha512: Option<Stage<HashThread<Sha512>>>,
    tmp: PathBuf,
    target: PathBuf,
    dir: PathBuf,
    inspector: Inspector,
    /// Received bytes not yet handed to the stages: they get batches of [`BATCH`] bytes, so
    /// that their threads wake once per batch rather than once per network read.
    pending: bytes::BytesMut,
    size: u64,
    limit: u64,
    done: bool,
}

const BATCH: usize = 1 << 20;
const WRITE_BUFFER: usize = 1 << 20;
/// Batches queued per stage: an upload holds at most a few MiB in memory.
const QUEUE: usize = 4;
/// Chunks a download reads ahead.
const READ_AHEAD: usize = 4;

/// Work done on every chunk, on a thread of its own.
trait Sink: Send + 'static {
    type Output: Send + 'static;
    fn take(&mut self, chunk: &[u8]) -> std::io::Result<()>;
    /// Makes what was taken so far visible to other programs.
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn finish(self) -> std::io::Result<Self::Output>;
}

struct WriterThread {
    file: std::io::BufWriter<std::fs::File>,
    /// Bytes handed to the file, and the end of the last window sent to the disk.
    written: u64,
    flushed: u64,
}

/// Uploads are sent to the disk in windows of this size while they arrive, so that the
/// final fsync has little left to do and the page cache does not fill with dirty data.
const WRITEBACK_WINDOW: u64 = 8 << 20;

impl WriterThread {
    /// Starts writeback of the newest full window and waits for the one before it (the
    /// streaming-write pattern of `sync_file_range(2)`); then drops the written pages from
    /// the cache, since an image is read back rarely and whole.
    fn write_back(&mut self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        std::io::Write::flush(&mut self.file)?;
        let fd = self.file.get_ref().as_raw_fd();
        let start = self.flushed;
        let len = self.written - start;
        // SAFETY: plain system calls on a file descriptor this thread owns, with offsets
        // inside the file.
        unsafe {
            if libc::sync_file_range(fd, start as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if start >= WRITEBACK_WINDOW {
                let prev = start - WRITEBACK_WINDOW;
                let flags =
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
                if libc::sync_file_range(fd, prev as i64, WRITEBACK_WINDOW as i64, flags) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::posix_fadvise(fd, prev as i64, WRITEBACK_WINDOW as i64, libc::POSIX_FADV_DONTNEED);
            }
        }
        self.flushed = self.written;
        Ok(())
    }
}

impl Sink for WriterThread {
    type Output = ();
    fn take(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        std::io::Write::write_all(&mut self.file, chunk)?;
        self.written += chunk.len() as u64;
        if self.written - self.flushed >= WRITEBACK_WINDOW {
            self.write_back()?;
        }
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut self.file)
    }
    fn finish(self) -> std::io::Result<()> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

struct HashThread<D>(D);

impl<D: Digest + Send + 'static> Sink for HashThread<D> {
    type Output = String;
    fn take(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.0.update(chunk);
        Ok(())
    }
    fn finish(self) -> std::io::Result<String> {
        Ok(hex(&self.0.finalize()))
    }
}

enum Msg<O> {
    Data(Bytes),
    Sync(tokio::sync::oneshot::Sender<std::io::Result<()>>),
    Finish(tokio::sync::oneshot::Sender<std::io::Result<O>>),
}

/// A [`Sink`] running on its own thread, fed through a bounded channel. Dropping it without
/// `finish` stops the thread after the chunks already queued.
struct Stage<S: Sink> {
    tx: tokio::sync::mpsc::Sender<Msg<S::Output>>,
}

impl<S: Sink> Stage<S> {
    fn spawn(mut sink: S) -> Stage<S> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg<S::Output>>(QUEUE);
        std::thread::spawn(move || {
            let mut failed: Option<std::io::Error> = None;
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    Msg::Data(chunk) => {
                        if failed.is_none() {
                            failed = sink.take(&chunk).err();
                        }
                    }
                    Msg::Sync(reply) => {
                        let r = match failed.take() {
                            Some(e) => Err(e),
                            None => sink.sync(),
                        };
                        let _ = reply.send(r);
                    }
                    Msg::Finish(reply) => {
                        let r = match failed.take() {
                            Some(e) => Err(e),
                            None => sink.finish(),
                        };
                        let _ = reply.send(r);
                        return;
                    }
                }
            }
        });
        Stage { tx }
    }

    async fn send(&self, chunk: Bytes) -> std::io::Result<()> {
        self.tx.send(Msg::Data(chunk)).await.map_err(|_| std::io::Error::other("upload stage stopped"))
    }

    async fn call<T>(
        &self,
        msg: impl FnOnce(tokio::sync::oneshot::Sender<std::io::Result<T>>) -> Msg<S::Output>,
    ) -> std::io::Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx.send(msg(reply)).await.map_err(|_| std::io::Error::other("upload stage stopped"))?;
        answer.await.map_err(|_| std::io::Error::other("upload stage stopped"))?
    }
}

impl Upload {
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(StoreError::TooLarge { limit: self.limit });
        }
        self.inspector.feed(&chunk);
        if self.pending.is_empty() && chunk.len() >= BATCH {
            return self.send(chunk).await;
        }
        self.pending.extend_from_slice(&chunk);
        if self.pending.len() >= BATCH {
            let batch = self.pending.split().freeze();
            return self.send(batch).await;
        }
        Ok(())
    }

    /// Hands what is pending to the stages.
    async fn send_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = self.pending.split().freeze();
        self.send(batch).await
    }

    async fn send(&self, chunk: Bytes) -> Result<(), StoreError> {
        let running = "an upload's stages run until commit";
        let (writer, md5, sha512) = (
            self.writer.as_ref().expect(running),
            self.md5.as_ref().expect(running),
            self.sha512.as_ref().expect(running),
        );
        let (w, m, s) = tokio::join!(writer.send(chunk.clone()), md5.send(chunk.clone()), sha512.send(chunk));
        w.and(m).and(s).map_err(io("write", &self.tmp))
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Writes out what was received, so that other programs (qemu-img) can read the
    /// temporary file at [`Upload::tmp_path`].
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        self.send_pending().await?;
        let writer = self.writer.as_ref().expect("an upload's stages run until commit");
        writer.call(Msg::Sync).await.map_err(io("write", &self.tmp))
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
        self.send_pending().await?;
        let running = "an upload's stages run until commit";
        let (writer, md5, sha512) =
            (self.writer.take().expect(running), self.md5.take().expect(running), self.sha512.take().expect(running));
        let (written, md5, sha512) =
            tokio::join!(writer.call(Msg::Finish), md5.call(Msg::Finish), sha512.call(Msg::Finish));
        written.map_err(io("write", &self.tmp))?;
        let md5 = md5.map_err(io("hash", &self.tmp))?;
        let sha512 = sha512.map_err(io("hash", &self.tmp))?;
        tokio::fs::rename(&self.tmp, &self.target).await.map_err(io("rename", &self.tmp))?;
        if let Ok(d) = tokio::fs::File::open(&self.dir).await {
            let _ = d.sync_all().await;
        }
        self.done = true;
        let inspector = std::mem::take(&mut self.inspector);
        Ok(Stored { size: self.size, md5, sha512, inspection: inspector.finish() })
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
        up.write(Bytes::from_static(b"hello ")).await.unwrap();
        up.write(Bytes::from_static(b"world")).await.unwrap();
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
        up.write(Bytes::from_static(b"partial")).await.unwrap();
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
        assert!(matches!(up.write(Bytes::from_static(b"12345")).await, Err(StoreError::TooLarge { limit: 4 })));
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
