//! The image service's rules that are not HTTP: who sees an image, quotas, and the upload
//! pipeline (stream → hash and inspect → safety checks → durable commit).

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use haneul_core::auth::AuthContext;
use haneul_core::config::Config;
use haneul_core::docstore::{State, StoreError, Txn as DocTxn};
use haneul_core::limits::LimitSource;
use haneul_core::policy::PolicyFile;

use crate::inspect::{decide, Format};
use crate::model::{Image, Model, Status};
use crate::store::{self, FsStore, ImageStore, Stored};

pub type Txn = DocTxn<Model>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The service type quotas are registered under (Keystone unified limits).
pub const SERVICE_TYPE: &str = "image";
/// The unified-limit resources Glance enforces, with the defaults `haneul serve` registers.
pub const DEFAULT_LIMITS: &[(&str, i64)] = &[
    ("image_size_total", 10240),
    ("image_stage_total", 10240),
    ("image_count_total", 1000),
    ("image_count_uploading", 100),
];
const MIB: u64 = 1 << 20;
/// An upload that sends nothing for this long is abandoned (and its image queued again).
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    /// A quota or size limit: 413.
    #[error("{0}")]
    OverLimit(String),
    /// The content is not what the image declares, or is unsafe: 415.
    #[error("{0}")]
    Unsupported(String),
    /// The client stopped sending the data.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// The image was deleted while its data arrived: 410.
    #[error("{0}")]
    Gone(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Data(#[from] store::StoreError),
}

pub struct Settings {
    pub size_cap: u64,
    pub member_quota: usize,
    pub property_quota: usize,
    pub tag_quota: usize,
    pub qemu_img_check: bool,
}

/// The image service.
pub struct Images {
    state: State<Model>,
    pub store: Arc<dyn ImageStore>,
    /// `glance-direct` staging area (always local).
    pub staging: FsStore,
    pub policy: PolicyFile,
    pub limits: Arc<dyn LimitSource>,
    pub settings: Settings,
}

impl Images {
    /// Opens the database and the store, and leaves nothing half-done from before a crash:
    /// uploads and imports that were in progress go back to `queued` without data, and data
    /// files no image owns are removed.
    pub async fn open(config: &Config, limits: Arc<dyn LimitSource>) -> Result<Arc<Images>> {
        let db = haneul_core::docstore::Store::open(&config.image_database_url(), "image", crate::model::TABLES, &[])
            .await?;
        let state = State::<Model>::open(db).await?;
        let dir = config.image_store_dir();
        let fs = FsStore::open(&dir).await?;
        let staging = FsStore::open(dir.join("staging")).await?;
        let policy = PolicyFile::new(config.image_policy_file(), crate::policy_defaults::DEFAULT_RULES)
            .map_err(|e| Error::BadRequest(format!("image policy could not be loaded: {e}")))?;
        let mut qemu_img_check = config.image.qemu_img_check;
        if qemu_img_check && !crate::qemu::available().await {
            tracing::warn!(
                "qemu-img is not installed (Debian: qemu-utils): uploads are checked by the built-in inspector only"
            );
            qemu_img_check = false;
        }
        let images = Arc::new(Images {
            state,
            store: Arc::new(fs.clone()),
            staging: staging.clone(),
            policy,
            limits,
            settings: Settings {
                size_cap: config.image.image_size_cap,
                member_quota: config.image.image_member_quota,
                property_quota: config.image.image_property_quota,
                tag_quota: config.image.image_tag_quota,
                qemu_img_check,
            },
        });
        images.recover(&fs, &staging).await?;
        Ok(images)
    }

    async fn recover(&self, fs: &FsStore, staging: &FsStore) -> Result<()> {
        let stuck: Vec<String> =
            self.model().images.values().filter(|i| i.status.is_transient()).map(|i| i.id.clone()).collect();
        if !stuck.is_empty() {
            self.write(|t| {
                for id in &stuck {
                    let mut img = t.edit(&t.m.images, "image", id)?;
                    tracing::warn!(image = %id, status = img.status.as_str(), "upload interrupted by a restart; image is queued again without data");
                    img.clear_data();
                    img.updated_at = Utc::now();
                    t.put(img)?;
                }
                Ok(())
            })
            .await?;
        }
        let m = self.model();
        let has_data =
            |id: &str| m.images.get(id).is_some_and(|i| matches!(i.status, Status::Active | Status::Deactivated));
        for id in fs.ids().await? {
            if !has_data(&id) {
                tracing::warn!(file = %id, "removing image data no image owns");
                fs.delete(&id).await?;
            }
        }
        for id in staging.ids().await? {
            if !m.images.get(&id).is_some_and(|i| i.staged) {
                staging.delete(&id).await?;
            }
        }
        Ok(())
    }

    pub fn model(&self) -> Arc<Model> {
        self.state.model()
    }

    /// Reloads the snapshot if another process wrote to the database.
    pub async fn refresh(&self) -> Result<bool> {
        Ok(self.state.refresh().await?)
    }

    pub async fn write<R>(&self, f: impl FnOnce(&mut Txn) -> Result<R>) -> Result<R> {
        self.state.write(f).await
    }

    /// Changes one image; 404 if it is gone.
    pub async fn update(&self, id: &str, f: impl FnOnce(&mut Image) -> Result<()>) -> Result<Arc<Image>> {
        self.write(|t| {
            let mut img =
                t.m.images
                    .get(id)
                    .map(|i| (**i).clone())
                    .ok_or_else(|| Error::NotFound(format!("No image found with ID {id}")))?;
            f(&mut img)?;
            img.updated_at = Utc::now();
            Ok(t.put(img)?)
        })
        .await
    }

    /// Whether the caller may know the image exists (Glance's database-level visibility).
    pub fn visible(&self, m: &Model, ctx: &AuthContext, img: &Image) -> bool {
        if is_admin(ctx) {
            return true;
        }
        let project = ctx.project_id();
        if project.is_some() && img.owner.as_deref() == project {
            return true;
        }
        match img.visibility {
            crate::model::Visibility::Public | crate::model::Visibility::Community => true,
            crate::model::Visibility::Shared => project.is_some_and(|p| m.member(&img.id, p).is_some()),
            crate::model::Visibility::Private => false,
        }
    }

    /// Refuses when `current + delta > limit` for the owner's `resource` (Glance's 413).
    pub fn check_quota(&self, m: &Model, project: &str, resource: &str, delta: u64) -> Result<()> {
        let Some(limit) = self.limits.limit(SERVICE_TYPE, project, resource) else { return Ok(()) };
        let usage = usage(m, project, resource);
        if usage + delta > limit.max(0) as u64 {
            return Err(Error::OverLimit(format!(
                "Project {project} is over a limit for [Resource {resource} is over limit of {limit} due to current usage {usage} and delta {delta}]"
            )));
        }
        Ok(())
    }

    /// Bytes the project may still add to `image_size_total` (None: no limit).
    pub fn size_headroom(&self, m: &Model, project: &str) -> Option<u64> {
        let limit = self.limits.limit(SERVICE_TYPE, project, "image_size_total")?;
        let used: u64 = owned(m, project).filter_map(|i| i.size).sum();
        Some((limit.max(0) as u64 * MIB).saturating_sub(used))
    }

    /// Streams `body` into the store as `img`'s data: hashed, inspected against the declared
    /// formats, checked by `qemu-img` when configured, and committed durably. Nothing is left
    /// behind on any error. `limit` caps the bytes accepted.
    pub async fn ingest<S, E>(&self, img: &Image, body: S, limit: u64, quota_note: Option<&str>) -> Result<Ingested>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let disk = img.disk_format.clone().unwrap_or_default();
        let container = img.container_format.clone().unwrap_or_default();
        let mut upload = self.store.begin(&img.id, limit).await?;
        let mut body = std::pin::pin!(body);
        loop {
            let next = tokio::time::timeout(IDLE_TIMEOUT, body.next())
                .await
                .map_err(|_| Error::Interrupted(format!("no data for {} seconds", IDLE_TIMEOUT.as_secs())))?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| Error::Interrupted(e.to_string()))?;
            if let Err(e) = upload.write(chunk).await {
                return Err(match (e, quota_note) {
                    (store::StoreError::TooLarge { .. }, Some(note)) => Error::OverLimit(note.to_string()),
                    (store::StoreError::TooLarge { limit }, None) => {
                        Error::OverLimit(format!("Image exceeds the storage quota or size cap of {limit} bytes."))
                    }
                    (e, _) => Error::Data(e),
                });
            }
        }
        let inspection = upload.inspect();
        let mut virtual_size = decide(&disk, &container, &inspection).map_err(|r| Error::Unsupported(r.to_string()))?;
        let detected = inspection.format;
        if self.settings.qemu_img_check && container == "bare" && detected != Format::Raw {
            if let Some(qemu_format) = qemu_format(detected) {
                upload.flush().await?;
                let size = crate::qemu::check(upload.tmp_path(), qemu_format).await.map_err(|e| {
                    let why = haneul_core::service::chain(&e);
                    tracing::warn!(image = %img.id, error = %why, "qemu-img refused an upload");
                    Error::Unsupported(format!("Image failed safety checks: {why}"))
                })?;
                if disk == detected.name() {
                    virtual_size = Some(size);
                }
            }
        }
        let stored = self.store.commit(upload).await?;
        Ok(Ingested { stored, virtual_size })
    }
}

/// What [`Images::ingest`] stored.
pub struct Ingested {
    pub stored: Stored,
    pub virtual_size: Option<u64>,
}

/// qemu-img's name of a format it should double-check.
fn qemu_format(f: Format) -> Option<&'static str> {
    Some(match f {
        Format::Qcow2 => "qcow2",
        Format::Vmdk => "vmdk",
        Format::Vhd => "vpc",
        Format::Vhdx => "vhdx",
        Format::Vdi => "vdi",
        _ => return None,
    })
}

pub fn is_admin(ctx: &AuthContext) -> bool {
    ctx.has_role("admin")
}

fn owned<'a>(m: &'a Model, project: &'a str) -> impl Iterator<Item = &'a Image> + 'a {
    m.images.values().filter(move |i| i.owner.as_deref() == Some(project) && i.status != Status::Killed).map(|i| &**i)
}

/// A project's usage of a quota resource, in the resource's unit (MiB for sizes).
pub fn usage(m: &Model, project: &str, resource: &str) -> u64 {
    match resource {
        "image_count_total" => owned(m, project).count() as u64,
        "image_size_total" => owned(m, project).filter(|i| !i.staged).filter_map(|i| i.size).sum::<u64>() / MIB,
        "image_stage_total" => owned(m, project).filter(|i| i.staged).filter_map(|i| i.size).sum::<u64>() / MIB,
        "image_count_uploading" => owned(m, project).filter(|i| i.status.is_transient()).count() as u64,
        _ => 0,
    }
}
