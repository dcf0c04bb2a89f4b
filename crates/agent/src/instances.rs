//! The instances of this host, as the controller wants them: "instance X should exist with
//! this spec and power state, generation N". Applying a spec is idempotent: a replay of the
//! generation last applied changes nothing, an older generation is refused, a newer one
//! moves the instance (creating its disk and config drive, starting, stopping, pausing,
//! rebooting) until it matches. What the instance is (its observed state) is reported, never
//! assumed: a guest that powered itself off is `shutoff` whatever the spec says, until the
//! controller sends a spec that agrees.
//!
//! An instance is a directory under `instances_dir`: `spec.json` (the spec last applied),
//! `disk` (a qcow2 overlay on `_base/<image id>`), `disk.config` (the config drive), and the
//! QEMU files of [`crate::virt`]. Instances outlive the agent; a restarted agent finds them
//! by their directories and adopts their QEMU processes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use haneul_core::client::ClientError;
use haneul_core::image_api::ImageApi;
use haneul_core::qemu_img::QemuImgError;
use haneul_core::service_auth::ServiceToken;
use http_body_util::BodyExt;

use crate::netdp::sys::SysError;
use crate::virt::configdrive::ConfigDriveError;
use crate::virt::qcow2::Qcow2Error;
use crate::virt::{configdrive, console, qcow2, qemu, Accel, Domain, VirtError};

pub use haneul_contracts::agent::{ImageRef, Observed, Power, Spec};

/// Why an instance is not (or could not be made) what was asked. The first three are the
/// caller's; the rest are failures on this host, each with its cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A spec older than the one applied.
    #[error("{0}")]
    Stale(String),
    /// A file or directory of the instance.
    #[error(transparent)]
    File(#[from] haneul_core::error::FileError),
    #[error("encoding the instance's spec")]
    EncodeSpec(#[source] serde_json::Error),
    #[error(transparent)]
    Virt(#[from] VirtError),
    #[error(transparent)]
    QemuImg(#[from] QemuImgError),
    #[error(transparent)]
    ConfigDrive(#[from] ConfigDriveError),
    #[error("making the instance's disk")]
    Disk(#[source] Qcow2Error),
    #[error("plugging the guest's ports")]
    Plug(#[source] SysError),
    #[error("reading the console log")]
    Console(#[source] std::io::Error),
    /// An image going to or coming from the image service: `what` (finding, fetching,
    /// caching, uploading) failed.
    #[error("{what} image {image_id}")]
    Image {
        what: &'static str,
        image_id: String,
        #[source]
        source: ImageError,
    },
    /// The disk's thread did not finish (it panicked, or the agent is stopping).
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
    /// No build slot can be had (the agent is stopping).
    #[error(transparent)]
    Slots(#[from] tokio::sync::AcquireError),
}

/// What went wrong moving an image's data.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the image service answered {0}")]
    Status(hyper::StatusCode),
    #[error(transparent)]
    Body(#[from] hyper::Error),
    #[error(transparent)]
    Cache(#[from] std::io::Error),
}

/// How long saving or loading a suspended guest's state may take.
pub const SAVE_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a guest gets to power off by itself (Nova's `shutdown_timeout`).
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Settings {
    pub host: String,
    pub instances_dir: PathBuf,
    pub accel: Accel,
    pub console_log_max: u64,
    /// See `compute.guest_nice`.
    pub guest_nice: i32,
}

/// The instances of this host.
pub struct Instances {
    pub settings: Settings,
    /// The service user's token, for fetching images from the image service.
    service: Arc<ServiceToken>,
    /// One lock per instance: specs for an instance apply one after the other.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One lock per image being cached: concurrent builds share one download.
    downloads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Build slots, as many as the host has cores: a new instance holds one while its QEMU
    /// starts (its files are made before). Builds that start together then finish one after
    /// the other instead of all late, sharing the CPU at once.
    build_slots: tokio::sync::Semaphore,
    /// The network data plane, when this host has one: guests' taps come from it.
    dataplane: std::sync::OnceLock<Arc<crate::netdp::Dataplane>>,
}

/// A spec's NIC as QEMU plugs it.
fn guest_nic(n: &crate::netdp::Nic) -> qemu::Nic {
    qemu::Nic { tap: crate::netdp::doc::tap_name(&n.port_id), mac: n.mac.clone(), slot: n.slot }
}

fn valid_uuid(id: &str) -> Result<(), Error> {
    let ok = id.len() == 36
        && id
            .chars()
            .enumerate()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() });
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!("{id} is not an instance uuid")))
    }
}

impl Instances {
    pub fn new(settings: Settings, service: Arc<ServiceToken>) -> Arc<Instances> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(Instances {
            settings,
            service,
            locks: Mutex::new(HashMap::new()),
            downloads: Mutex::new(HashMap::new()),
            build_slots: tokio::sync::Semaphore::new(cores),
            dataplane: std::sync::OnceLock::new(),
        })
    }

    /// Gives guests network interfaces from `dp` (once, at start-up).
    pub fn set_dataplane(&self, dp: Arc<crate::netdp::Dataplane>) {
        let _ = self.dataplane.set(dp);
    }

    fn lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap().entry(id.to_string()).or_default().clone()
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.settings.instances_dir.join(id)
    }

    fn domain(&self, id: &str, spec: &Spec) -> Domain {
        let dir = self.dir(id);
        let cd = dir.join("disk.config");
        let rescue = dir.join("disk.rescue");
        Domain {
            uuid: id.to_string(),
            name: format!("instance-{}", &id[..8]),
            memory_mib: spec.memory_mib.max(16),
            vcpus: spec.vcpus.max(1),
            disk: dir.join("disk"),
            config_drive: cd.exists().then_some(cd),
            accel: self.settings.accel,
            nice: self.settings.guest_nice,
            incoming: None,
            rescue_disk: rescue.exists().then_some(rescue),
            dir,
            nics: match self.dataplane.get() {
                Some(_) => spec.nics.iter().map(guest_nic).collect(),
                None => Vec::new(),
            },
            netns: self.dataplane.get().and_then(|d| d.settings.host_ns.clone()),
        }
    }

    /// Enough of an instance's domain to find and control its QEMU (not to start one).
    fn control_domain(&self, id: &str) -> Domain {
        let dir = self.dir(id);
        Domain {
            uuid: id.to_string(),
            name: String::new(),
            memory_mib: 0,
            vcpus: 0,
            disk: dir.join("disk"),
            config_drive: None,
            accel: self.settings.accel,
            nice: self.settings.guest_nice,
            incoming: None,
            rescue_disk: None,
            dir,
            nics: Vec::new(),
            netns: None,
        }
    }

    /// The instance's VNC socket.
    pub fn vnc_socket(&self, id: &str) -> PathBuf {
        self.control_domain(id).vnc_socket()
    }

    /// Where a suspended instance's state is kept.
    fn saved_state(&self, id: &str) -> PathBuf {
        self.dir(id).join("suspend.state")
    }

    fn stored(&self, id: &str) -> Option<Spec> {
        let text = std::fs::read(self.dir(id).join("spec.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn store(&self, id: &str, spec: &Spec) -> Result<(), Error> {
        let path = self.dir(id).join("spec.json");
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(spec).map_err(Error::EncodeSpec)?;
        std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &path)).map_err(file_error("writing", &path))
    }

    /// What an instance is now; `None` when this host has no such instance.
    pub async fn observe(&self, id: &str) -> Option<Observed> {
        let dir = self.dir(id);
        if !dir.is_dir() {
            return None;
        }
        let generation = self.stored(id).map_or(0, |s| s.generation);
        let d = self.control_domain(id);
        let pid = qemu::running_pid(&d);
        let power = match pid {
            None if self.saved_state(id).exists() => Power::Suspended,
            None => Power::Shutoff,
            Some(_) => match qemu::status(&d).await.as_deref() {
                Ok("paused") => Power::Paused,
                _ => Power::Running,
            },
        };
        Some(Observed { uuid: id.to_string(), generation, power, pid })
    }

    /// Every instance on this host.
    pub async fn list(&self) -> Vec<Observed> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.settings.instances_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| valid_uuid(n).is_ok())
            .collect();
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            if let Some(o) = self.observe(&id).await {
                out.push(o);
            }
        }
        out
    }

    /// Moves the instance to `spec` (see the module's description).
    pub async fn ensure(&self, id: &str, spec: Spec) -> Result<Observed, Error> {
        valid_uuid(id)?;
        for image in std::iter::once(&spec.image).chain(spec.rescue.as_ref()) {
            if !matches!(image.disk_format.as_str(), "qcow2" | "raw") {
                return Err(Error::BadRequest(format!("disk format {} cannot back an instance", image.disk_format)));
            }
        }
        let lock = self.lock(id);
        let _held = lock.lock().await;
        let before = self.stored(id);
        if let Some(b) = &before {
            if b.generation > spec.generation {
                return Err(Error::Stale(format!(
                    "instance {id} is at generation {}; generation {} is older",
                    b.generation, spec.generation
                )));
            }
            if b.generation == spec.generation {
                return self.observe(id).await.ok_or_else(|| Error::NotFound(format!("instance {id} vanished")));
            }
        }
        if before.is_none() {
            // The image is fetched (if it must be) before the instance's directory exists: a
            // failed fetch leaves nothing behind.
            self.cache_image(&spec.image.id).await?;
        }
        let dir = self.dir(id);
        std::fs::create_dir_all(&dir).map_err(file_error("creating", &dir))?;
        let disk = dir.join("disk");
        let image_changed = before.as_ref().is_some_and(|b| b.image.id != spec.image.id || spec.rebuilds > b.rebuilds);
        let running = qemu::running_pid(&self.domain(id, &spec)).is_some();
        if image_changed && running {
            // A new root disk (rebuild): the guest stops first, at once: its disk is thrown
            // away, so a clean shutdown would protect nothing.
            qemu::stop(&self.domain(id, &spec), Duration::ZERO).await?;
        }
        let backup = dir.join("disk.pre-resize");
        let reverting = before.as_ref().is_some_and(|b| spec.reverts > b.reverts) && backup.exists();
        let backing_up = spec.resize_backup && !backup.exists() && disk.exists();
        if (reverting || backing_up) && running {
            // The disk is copied or swapped with the guest stopped (it starts again below).
            qemu::stop(&self.domain(id, &spec), SHUTDOWN_TIMEOUT).await?;
        }
        if reverting {
            std::fs::rename(&backup, &disk).map_err(file_error("restoring", &disk))?;
        } else if backing_up {
            let tmp = backup.with_extension("tmp");
            std::fs::copy(&disk, &tmp)
                .and_then(|_| std::fs::rename(&tmp, &backup))
                .map_err(file_error("keeping", &backup))?;
        } else if !spec.resize_backup && backup.exists() {
            // The resize was confirmed.
            let _ = std::fs::remove_file(&backup);
        }
        if !disk.exists() || image_changed {
            // A saved state belongs to the old disk.
            let _ = std::fs::remove_file(self.saved_state(id));
            self.make_disk(&disk, &spec).await?;
        } else if before.as_ref().is_some_and(|b| spec.disk_gb > b.disk_gb) {
            haneul_core::qemu_img::resize(&disk, spec.disk_gb).await?;
        }
        let rescue_disk = dir.join("disk.rescue");
        if spec.rescue.is_some() != rescue_disk.exists() {
            // Into or out of rescue: the guest is switched off (as Nova does) and starts
            // again from the other disk below.
            qemu::stop(&self.domain(id, &spec), Duration::ZERO).await?;
            match &spec.rescue {
                Some(image) => {
                    let rescue_spec = Spec { image: image.clone(), disk_gb: 0, ..spec.clone() };
                    self.make_disk(&rescue_disk, &rescue_spec).await?;
                }
                None => std::fs::remove_file(&rescue_disk).map_err(file_error("removing", &rescue_disk))?,
            }
        }
        if before.as_ref().map(|b| &b.config_drive) != Some(&spec.config_drive) || image_changed {
            self.make_config_drive(&dir, &spec).await?;
        }
        // A first start waits for a build slot (QEMU's start-up is the CPU-heavy part; its
        // files are made before).
        let build_slot = match before {
            None => Some(self.build_slots.acquire().await?),
            Some(_) => None,
        };
        self.apply_power(id, before.as_ref(), &spec, build_slot).await?;
        self.store(id, &spec)?;
        self.observe(id).await.ok_or_else(|| Error::NotFound(format!("instance {id} vanished")))
    }

    async fn make_disk(&self, disk: &Path, spec: &Spec) -> Result<(), Error> {
        let base = self.cache_image(&spec.image.id).await?;
        let tmp = disk.with_extension("tmp");
        let format = spec.image.disk_format.clone();
        let disk_gb = spec.disk_gb;
        let written = tokio::task::spawn_blocking({
            let tmp = tmp.clone();
            move || {
                let size = match disk_gb {
                    0 => qcow2::virtual_size(&base, &format)?,
                    gb => gb
                        .checked_mul(1 << 30)
                        .ok_or_else(|| Qcow2Error::Invalid(format!("{gb} GiB is too large a disk")))?,
                };
                qcow2::create(&tmp, &base, &format, size)
            }
        })
        .await?;
        written.map_err(Error::Disk)?;
        std::fs::rename(&tmp, disk).map_err(file_error("placing", disk))
    }

    async fn make_config_drive(&self, dir: &Path, spec: &Spec) -> Result<(), Error> {
        let target = dir.join("disk.config");
        let Some(files) = &spec.config_drive else {
            let _ = std::fs::remove_file(&target);
            return Ok(());
        };
        let mut decoded = Vec::new();
        for (name, b64) in files {
            if name.starts_with('/') || name.split('/').any(|p| p == ".." || p.is_empty()) {
                return Err(Error::BadRequest(format!("config drive file name {name} is not a relative path")));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| Error::BadRequest(format!("config drive file {name} is not base64")))?;
            decoded.push((name.clone(), bytes));
        }
        Ok(configdrive::build(&target, &decoded).await?)
    }

    /// Brings the guest to the spec's power state; a build slot is given back once QEMU runs.
    async fn apply_power(
        &self,
        id: &str,
        before: Option<&Spec>,
        spec: &Spec,
        build_slot: Option<tokio::sync::SemaphorePermit<'_>>,
    ) -> Result<(), Error> {
        let d = self.domain(id, spec);
        let reboots = before.map_or(0, |b| b.reboots);
        let hard_reboots = before.map_or(0, |b| b.hard_reboots);
        let resized = before.is_some_and(|b| {
            b.memory_mib != spec.memory_mib
                || b.vcpus != spec.vcpus
                || b.disk_gb != spec.disk_gb
                || spec.reverts > b.reverts
        });
        let running = qemu::running_pid(&d).is_some();
        let saved = self.saved_state(id);
        match spec.power {
            Power::Shutoff => {
                if running {
                    qemu::stop(&d, SHUTDOWN_TIMEOUT).await?;
                }
                // A stopped guest boots afresh.
                let _ = std::fs::remove_file(&saved);
            }
            Power::Suspended => {
                if running {
                    qemu::save(&d, &saved, SAVE_TIMEOUT).await?;
                }
            }
            Power::Running | Power::Paused => {
                if running && spec.hard_reboots > hard_reboots {
                    qemu::stop(&d, Duration::ZERO).await?;
                } else if running && (spec.reboots > reboots || resized) {
                    qemu::stop(&d, SHUTDOWN_TIMEOUT).await?;
                }
                if qemu::running_pid(&d).is_some() {
                    if let Some(before) = before {
                        self.replug(&d, &before.nics, &spec.nics).await?;
                    }
                } else {
                    if let Some(dp) = self.dataplane.get() {
                        dp.plug(&spec.nics).await.map_err(Error::Plug)?;
                    }
                    if saved.exists() {
                        let from_saved = Domain { incoming: Some(saved.clone()), ..d.clone() };
                        qemu::start(&from_saved).await?;
                        qemu::wait_incoming(&d, SAVE_TIMEOUT).await?;
                        let _ = std::fs::remove_file(&saved);
                    } else {
                        qemu::start(&d).await?;
                    }
                }
                drop(build_slot);
                let paused = qemu::status(&d).await? == "paused";
                let want_paused = spec.power == Power::Paused;
                if paused != want_paused {
                    qemu::set_paused(&d, want_paused).await?;
                }
            }
        }
        Ok(())
    }

    /// Brings a running guest's NICs from `before` to `after`: new ones are plugged in
    /// (their taps first), gone ones taken out.
    async fn replug(&self, d: &Domain, before: &[crate::netdp::Nic], after: &[crate::netdp::Nic]) -> Result<(), Error> {
        let Some(dp) = self.dataplane.get() else { return Ok(()) };
        for gone in before.iter().filter(|n| !after.iter().any(|a| a.port_id == n.port_id)) {
            if !qemu::unplug_nic(d, &guest_nic(gone)).await? {
                tracing::warn!(instance = %d.uuid, port = %gone.port_id,
                    "the guest did not let go of its interface; it stays, unconnected, until the guest next starts");
            }
        }
        let new: Vec<crate::netdp::Nic> =
            after.iter().filter(|n| !before.iter().any(|b| b.port_id == n.port_id)).cloned().collect();
        if new.is_empty() {
            return Ok(());
        }
        dp.plug(&new).await.map_err(Error::Plug)?;
        for nic in &new {
            qemu::plug_nic(d, &guest_nic(nic)).await?;
        }
        Ok(())
    }

    /// Stops the instance's QEMU and removes its files; absent instances are fine.
    pub async fn destroy(&self, id: &str) -> Result<(), Error> {
        valid_uuid(id)?;
        let lock = self.lock(id);
        let _held = lock.lock().await;
        let dir = self.dir(id);
        if !dir.exists() {
            return Ok(());
        }
        let d = self.control_domain(id);
        qemu::stop(&d, Duration::ZERO).await?;
        qemu::cleanup(&d);
        std::fs::remove_dir_all(&dir).map_err(file_error("removing", &dir))?;
        self.locks.lock().unwrap().remove(id);
        Ok(())
    }

    /// Uploads a copy of the instance's root disk (flattened, qcow2) as the data of image
    /// `image_id`, which the controller created. A running guest is paused while its disk is
    /// copied, so the copy is consistent, and resumed after.
    pub async fn snapshot(&self, id: &str, image_id: &str) -> Result<(), Error> {
        valid_uuid(id)?;
        if image_id.is_empty() || !image_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::BadRequest(format!("{image_id} is not an image id")));
        }
        let lock = self.lock(id);
        let _held = lock.lock().await;
        let dir = self.dir(id);
        if !dir.join("disk").exists() {
            return Err(Error::NotFound(format!("no instance {id} on this host")));
        }
        let d = self.control_domain(id);
        let pause = qemu::running_pid(&d).is_some() && qemu::status(&d).await? == "running";
        if pause {
            qemu::set_paused(&d, true).await?;
        }
        let copy = dir.join(format!("snapshot-{image_id}.tmp"));
        let converted = haneul_core::qemu_img::convert(&dir.join("disk"), "qcow2", &copy, "qcow2", true)
            .await
            .map_err(Error::QemuImg);
        if pause {
            if let Err(e) = qemu::set_paused(&d, false).await {
                let error = haneul_core::service::chain(&e);
                tracing::warn!(instance = %id, %error, "could not resume the guest after its snapshot");
            }
        }
        let result = match converted {
            Ok(()) => self.upload(image_id, &copy).await,
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&copy);
        result
    }

    async fn upload(&self, image_id: &str, file: &Path) -> Result<(), Error> {
        let images =
            ImageApi::new(&self.service.endpoint("image").await.map_err(|e| image_error("finding", image_id, e))?);
        let token = self.service.token().await.map_err(|e| image_error("uploading", image_id, e))?;
        let url = images.file_url(image_id);
        haneul_core::client::upload_file(&url, &token, file).await.map_err(|e| image_error("uploading", image_id, e))
    }

    /// The end of the instance's console log (capped first, as QEMU never rotates it).
    pub fn console(&self, id: &str, lines: Option<usize>) -> Result<String, Error> {
        valid_uuid(id)?;
        let log = self.dir(id).join("console.log");
        if !self.dir(id).is_dir() {
            return Err(Error::NotFound(format!("no instance {id} on this host")));
        }
        let _ = console::cap(&log, self.settings.console_log_max);
        console::tail(&log, lines).map_err(Error::Console)
    }

    /// The image's data in the local cache (`_base/<id>`), fetched once from the image
    /// service as the service user.
    pub async fn cache_image(&self, image_id: &str) -> Result<PathBuf, Error> {
        if image_id.is_empty() || !image_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Error::BadRequest(format!("{image_id} is not an image id")));
        }
        let base_dir = self.settings.instances_dir.join("_base");
        let target = base_dir.join(image_id);
        if target.exists() {
            return Ok(target);
        }
        let lock = self.downloads.lock().unwrap().entry(image_id.to_string()).or_default().clone();
        let _held = lock.lock().await;
        if target.exists() {
            // Another build fetched it meanwhile.
            return Ok(target);
        }
        std::fs::create_dir_all(&base_dir).map_err(file_error("creating", &base_dir))?;
        let tmp = base_dir.join(format!(".{image_id}.{}", uuid::Uuid::new_v4().simple()));
        let result = self.download(image_id, &tmp).await;
        match result {
            Ok(()) => {
                std::fs::rename(&tmp, &target).map_err(|e| image_error("caching", image_id, e))?;
                Ok(target)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    async fn download(&self, image_id: &str, to: &Path) -> Result<(), Error> {
        use tokio::io::AsyncWriteExt;
        let images =
            ImageApi::new(&self.service.endpoint("image").await.map_err(|e| image_error("finding", image_id, e))?);
        let token = self.service.token().await.map_err(|e| image_error("fetching", image_id, e))?;
        let url = images.file_url(image_id);
        let resp = haneul_core::client::send(hyper::Method::GET, &url, &[("x-auth-token", &token)], None)
            .await
            .map_err(|e| image_error("fetching", image_id, e))?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(image_error("fetching", image_id, ImageError::Status(resp.status())));
        }
        let mut file = tokio::fs::File::create(to).await.map_err(|e| image_error("caching", image_id, e))?;
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| image_error("fetching", image_id, e))?;
            if let Some(data) = frame.data_ref() {
                file.write_all(data).await.map_err(|e| image_error("caching", image_id, e))?;
            }
        }
        file.sync_all().await.map_err(|e| image_error("caching", image_id, e))
    }
}

/// `Error::File`: `what` failed on `path`.
fn file_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let at = haneul_core::error::FileError::at(what, path);
    move |source| Error::File(at(source))
}

/// `what` (finding, fetching, caching, uploading) failed for image `image_id`.
fn image_error(what: &'static str, image_id: &str, cause: impl Into<ImageError>) -> Error {
    Error::Image { what, image_id: image_id.to_string(), source: cause.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haneul_core::service_auth::Credentials;

    fn instances(dir: &Path) -> Arc<Instances> {
        let creds = Credentials {
            auth_url: "http://127.0.0.1:9/v3".into(),
            username: "nova".into(),
            password: "unused".into(),
            project_name: "service".into(),
        };
        let settings = Settings {
            host: "h".into(),
            instances_dir: dir.to_path_buf(),
            accel: Accel::Tcg,
            console_log_max: 1 << 20,
            guest_nice: 10,
        };
        Instances::new(settings, ServiceToken::new(creds))
    }

    fn spec(generation: u64) -> Spec {
        Spec {
            generation,
            memory_mib: 64,
            vcpus: 1,
            disk_gb: 0,
            image: ImageRef { id: "img".into(), disk_format: "qcow2".into() },
            config_drive: None,
            power: Power::Running,
            reboots: 0,
            hard_reboots: 0,
            rebuilds: 0,
            resize_backup: false,
            reverts: 0,
            rescue: None,
            nics: Vec::new(),
        }
    }

    const ID: &str = "0b9f4a52-6a2e-4d43-9a51-7b3c1f0e8d21";

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("haneul-agent-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join(ID)).unwrap();
        dir
    }

    #[tokio::test]
    async fn an_older_generation_is_refused_and_a_replay_changes_nothing() {
        let dir = scratch("gen");
        let i = instances(&dir);
        i.store(ID, &spec(5)).unwrap();
        assert!(matches!(i.ensure(ID, spec(4)).await, Err(Error::Stale(_))));
        // The same generation again: nothing is started (no QEMU, no disk made), the state is reported.
        let o = i.ensure(ID, spec(5)).await.unwrap();
        assert_eq!((o.generation, o.power, o.pid), (5, Power::Shutoff, None));
        assert!(!dir.join(ID).join("disk").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn bad_ids_and_formats_are_refused_before_anything_is_touched() {
        let dir = scratch("bad");
        let i = instances(&dir);
        assert!(matches!(i.ensure("../etc", spec(1)).await, Err(Error::BadRequest(_))));
        let mut iso = spec(1);
        iso.image.disk_format = "iso".into();
        assert!(matches!(i.ensure(ID, iso).await, Err(Error::BadRequest(_))));
        assert!(!dir.join(ID).join("spec.json").exists());
        assert!(matches!(i.destroy("not-a-uuid").await, Err(Error::BadRequest(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn listing_reports_each_instance_directory_and_skips_the_image_cache() {
        let dir = scratch("list");
        std::fs::create_dir_all(dir.join("_base")).unwrap();
        let i = instances(&dir);
        let listed = i.list().await;
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].uuid.as_str(), listed[0].power), (ID, Power::Shutoff));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
