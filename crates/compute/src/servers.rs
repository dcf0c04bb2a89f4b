//! Building, deleting and recovering servers on this host through the QEMU driver.
//!
//! A build runs as a task: cache the image (`_base/<image id>`, fetched from the image
//! service with the caller's token, written to a temporary file and renamed), make the
//! instance's qcow2 overlay and config drive, start QEMU, and record each outcome on the
//! server (ACTIVE, or ERROR with a fault). First the scheduler picks a host and claims the
//! server's resources in placement (`crate::scheduler`); a server that fits nowhere ends in
//! ERROR with Nova's "No valid host" fault. The agent runs inside this process for now
//! (`haneul_agent::virt`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use haneul_agent::virt::{configdrive, qemu, Domain};
use http_body_util::BodyExt;
use serde_json::json;

use crate::model::{Fault, Server};
use crate::service::{Compute, Error};

/// Where the build needs to reach the image service, and as whom.
pub struct BuildRequest {
    pub server_id: String,
    pub image_url: String,
    pub token: String,
    pub disk_format: String,
    /// The image document, whose properties take part in scheduling.
    pub image: serde_json::Value,
}

impl Compute {
    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.settings.instances_dir.join(id)
    }

    pub fn domain(&self, s: &Server) -> Domain {
        let dir = self.instance_dir(&s.id);
        let cd = dir.join("disk.config");
        Domain {
            uuid: s.id.clone(),
            name: format!("instance-{}", &s.id[..8]),
            memory_mib: s.flavor.ram.max(16) as u64,
            vcpus: s.flavor.vcpus.max(1) as u32,
            disk: dir.join("disk"),
            config_drive: cd.exists().then_some(cd),
            accel: self.accel,
            dir,
        }
    }

    /// Records a server's new state; gone servers are left alone.
    pub async fn set_state(&self, id: &str, f: impl FnOnce(&mut Server)) -> crate::service::Result<()> {
        self.write(|t| {
            if let Some(s) = t.m.servers.get(id) {
                let mut s = (**s).clone();
                f(&mut s);
                s.updated_at = Utc::now();
                t.put(s)?;
            }
            Ok(())
        })
        .await
    }

    /// Builds the server; any failure leaves it in ERROR with the reason as its fault.
    pub async fn build(self: Arc<Self>, req: BuildRequest) {
        let id = req.server_id.clone();
        let Some(server) = self.model().servers.get(&id).cloned() else { return };
        let host = match self.schedule(&server, &req.image).await {
            Ok(host) => host,
            Err(message) => {
                tracing::warn!(server = %id, %message, "no host for the server");
                let _ = self
                    .set_state(&id, |s| {
                        s.vm_state = "error".into();
                        s.task_state = None;
                        s.fault = Some(Fault { code: 500, message, created: Utc::now() });
                    })
                    .await;
                return;
            }
        };
        let r = self
            .set_state(&id, |s| {
                s.host = Some(host.name.clone());
                s.task_state = Some("spawning".into());
            })
            .await;
        if let Err(e) = r {
            tracing::error!(server = %id, error = ?e, "could not record the server's host");
        }
        match self.try_build(&req).await {
            Ok(()) => {
                let r = self
                    .set_state(&id, |s| {
                        s.vm_state = "active".into();
                        s.task_state = None;
                        s.power_state = 1;
                        s.launched_at = Some(Utc::now());
                    })
                    .await;
                if let Err(e) = r {
                    tracing::error!(server = %id, error = ?e, "could not record a built server");
                }
                tracing::info!(server = %id, "server active");
            }
            Err(message) => {
                tracing::warn!(server = %id, %message, "build failed");
                if let Some(s) = self.model().servers.get(&id) {
                    let _ = qemu::stop(&self.domain(s), Duration::ZERO).await;
                }
                // As Nova does for a failed build: the resources go back.
                self.release(&id).await;
                let _ = self
                    .set_state(&id, |s| {
                        s.vm_state = "error".into();
                        s.task_state = None;
                        s.power_state = 0;
                        s.fault = Some(Fault { code: 500, message, created: Utc::now() });
                    })
                    .await;
            }
        }
    }

    async fn try_build(&self, req: &BuildRequest) -> Result<(), String> {
        let Some(server) = self.model().servers.get(&req.server_id).cloned() else {
            return Err("the server was deleted during its build".into());
        };
        let base = self.cache_image(&server.image_id, &req.image_url, &req.token).await?;
        let dir = self.instance_dir(&server.id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let disk = dir.join("disk");
        let mut args = vec!["create".to_string(), "-q".into(), "-f".into(), "qcow2".into(), "-F".into()];
        args.push(req.disk_format.clone());
        args.push("-b".into());
        args.push(base.display().to_string());
        args.push(disk.display().to_string());
        if server.flavor.disk > 0 {
            args.push(format!("{}G", server.flavor.disk));
        }
        run("qemu-img", &args).await?;
        let files = config_drive_files(&server);
        configdrive::build(&dir.join("disk.config"), &files).await.map_err(|e| e.to_string())?;
        if self.model().servers.get(&server.id).is_none() {
            return Err("the server was deleted during its build".into());
        }
        qemu::start(&self.domain(&server)).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The image's data in the local cache, fetched once.
    async fn cache_image(&self, image_id: &str, image_url: &str, token: &str) -> Result<PathBuf, String> {
        let base_dir = self.settings.instances_dir.join("_base");
        let target = base_dir.join(image_id);
        if target.exists() {
            return Ok(target);
        }
        std::fs::create_dir_all(&base_dir).map_err(|e| format!("creating {}: {e}", base_dir.display()))?;
        let tmp = base_dir.join(format!(".{image_id}.{}", uuid::Uuid::new_v4().simple()));
        let result = download(&format!("{image_url}/v2/images/{image_id}/file"), token, &tmp).await;
        match result {
            Ok(()) => {
                std::fs::rename(&tmp, &target).map_err(|e| format!("caching image {image_id}: {e}"))?;
                Ok(target)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Stops and removes the server's QEMU and files, then the server.
    pub async fn destroy(&self, id: &str) -> crate::service::Result<()> {
        if let Some(s) = self.model().servers.get(id).cloned() {
            let domain = self.domain(&s);
            qemu::stop(&domain, Duration::ZERO).await.map_err(|e| Error::Internal(e.to_string()))?;
            qemu::cleanup(&domain);
            let dir = self.instance_dir(id);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Error::Internal(format!("removing {}: {e}", dir.display())))?;
            }
        }
        self.release(id).await;
        self.write(|t| {
            if let Some(gid) = t.m.servers.get(id).and_then(|s| s.group.clone()) {
                if let Some(g) = t.m.server_groups.get(&gid) {
                    let mut g = (**g).clone();
                    g.members.retain(|m| m != id);
                    t.put(g)?;
                }
            }
            t.delete::<Server>(id);
            Ok(())
        })
        .await
    }

    /// After a restart: running instances are adopted as they are; ones whose QEMU is gone
    /// are SHUTOFF; builds that were cut short end in ERROR with a fault that says so.
    pub async fn recover(&self) -> crate::service::Result<()> {
        let servers: Vec<Arc<Server>> = self.model().servers.values().cloned().collect();
        for s in servers {
            let running = qemu::running_pid(&self.domain(&s)).is_some();
            match (s.vm_state.as_str(), running) {
                ("building", _) => {
                    let _ = qemu::stop(&self.domain(&s), Duration::ZERO).await;
                    self.release(&s.id).await;
                    tracing::warn!(server = %s.id, "build interrupted by a restart; server is in ERROR");
                    self.set_state(&s.id, |s| {
                        s.vm_state = "error".into();
                        s.task_state = None;
                        s.power_state = 0;
                        s.fault = Some(Fault {
                            code: 500,
                            message: "The build was interrupted by a restart of the compute service.".into(),
                            created: Utc::now(),
                        });
                    })
                    .await?;
                }
                ("active" | "paused", false) => {
                    tracing::warn!(server = %s.id, "QEMU is gone; server is SHUTOFF");
                    self.set_state(&s.id, |s| {
                        s.vm_state = "stopped".into();
                        s.task_state = None;
                        s.power_state = 4;
                    })
                    .await?;
                }
                ("active", true) => tracing::info!(server = %s.id, "adopted running instance"),
                _ => {}
            }
        }
        Ok(())
    }
}

async fn run(program: &str, args: &[String]) -> Result<(), String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("could not run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

async fn download(url: &str, token: &str, to: &Path) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let resp = haneul_core::client::send(hyper::Method::GET, url, &[("x-auth-token", token)], None)
        .await
        .map_err(|e| format!("fetching the image: {e}"))?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(format!("fetching the image: the image service answered {}", resp.status()));
    }
    let mut file = tokio::fs::File::create(to).await.map_err(|e| format!("caching the image: {e}"))?;
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("fetching the image: {e}"))?;
        if let Some(data) = frame.data_ref() {
            file.write_all(data).await.map_err(|e| format!("caching the image: {e}"))?;
        }
    }
    file.sync_all().await.map_err(|e| format!("caching the image: {e}"))?;
    Ok(())
}

/// The config drive's files, as Nova writes them (`openstack/latest/...`).
pub fn config_drive_files(s: &Server) -> Vec<(String, Vec<u8>)> {
    let mut public_keys = serde_json::Map::new();
    let mut keys = Vec::new();
    if let (Some(name), Some(data)) = (&s.key_name, &s.key_data) {
        public_keys.insert(name.clone(), json!(data));
        keys.push(json!({"name": name, "type": "ssh", "data": data}));
    }
    let meta = json!({
        "uuid": s.id,
        "meta": s.metadata,
        "public_keys": public_keys,
        "keys": keys,
        "hostname": hostname(&s.name),
        "name": s.name,
        "launch_index": 0,
        "availability_zone": s.availability_zone,
        "project_id": s.project_id,
        "devices": [],
    });
    let mut files = vec![
        ("openstack/latest/meta_data.json".to_string(), meta.to_string().into_bytes()),
        (
            "openstack/latest/network_data.json".to_string(),
            br#"{"links": [], "networks": [], "services": []}"#.to_vec(),
        ),
        ("openstack/latest/vendor_data.json".to_string(), b"{}".to_vec()),
        ("openstack/latest/vendor_data2.json".to_string(), b"{}".to_vec()),
    ];
    if let Some(ud) = &s.user_data {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(ud) {
            files.push(("openstack/latest/user_data".to_string(), bytes));
        }
    }
    files
}

/// A host name from a server name, as Nova sanitizes it.
pub fn hostname(name: &str) -> String {
    let h: String =
        name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let h = h.trim_matches('-');
    if h.is_empty() {
        "server".into()
    } else {
        h.chars().take(63).collect()
    }
}

/// A power action on a running or stopped server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    Stop,
    Start,
    RebootSoft,
    RebootHard,
    Pause,
    Unpause,
}

impl PowerAction {
    /// The task state while it runs, and the vm states it may start from.
    pub fn task_and_sources(self) -> (&'static str, &'static [&'static str]) {
        match self {
            PowerAction::Stop => ("powering-off", &["active", "error"]),
            PowerAction::Start => ("powering-on", &["stopped"]),
            PowerAction::RebootSoft => ("rebooting", &["active"]),
            PowerAction::RebootHard => ("rebooting_hard", &["active", "stopped", "paused", "error"]),
            PowerAction::Pause => ("pausing", &["active"]),
            PowerAction::Unpause => ("unpausing", &["paused"]),
        }
    }
}

/// How long a guest gets to power off by itself (Nova's `shutdown_timeout`).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

impl Compute {
    /// Runs a power action (the API checked the state and set the task); records the result.
    pub async fn power(self: Arc<Self>, id: String, action: PowerAction) {
        let Some(s) = self.model().servers.get(&id).cloned() else { return };
        let d = self.domain(&s);
        let result: Result<(String, u8), String> = async {
            match action {
                PowerAction::Stop => {
                    qemu::stop(&d, SHUTDOWN_TIMEOUT).await.map_err(|e| e.to_string())?;
                    Ok(("stopped".into(), 4))
                }
                PowerAction::Start => {
                    qemu::start(&d).await.map_err(|e| e.to_string())?;
                    Ok(("active".into(), 1))
                }
                PowerAction::RebootSoft => {
                    qemu::stop(&d, SHUTDOWN_TIMEOUT).await.map_err(|e| e.to_string())?;
                    qemu::start(&d).await.map_err(|e| e.to_string())?;
                    Ok(("active".into(), 1))
                }
                PowerAction::RebootHard => {
                    if qemu::running_pid(&d).is_some() {
                        qemu::stop(&d, Duration::ZERO).await.map_err(|e| e.to_string())?;
                    }
                    qemu::start(&d).await.map_err(|e| e.to_string())?;
                    Ok(("active".into(), 1))
                }
                PowerAction::Pause => {
                    qemu::set_paused(&d, true).await.map_err(|e| e.to_string())?;
                    Ok(("paused".into(), 3))
                }
                PowerAction::Unpause => {
                    qemu::set_paused(&d, false).await.map_err(|e| e.to_string())?;
                    Ok(("active".into(), 1))
                }
            }
        }
        .await;
        let r = match result {
            Ok((vm_state, power)) => {
                self.set_state(&id, |s| {
                    s.vm_state = vm_state;
                    s.power_state = power;
                    s.task_state = None;
                })
                .await
            }
            Err(message) => {
                tracing::warn!(server = %id, ?action, %message, "power action failed");
                let running = qemu::running_pid(&d).is_some();
                // A guest that should run but does not is in ERROR, as in Nova.
                self.set_state(&id, |s| {
                    s.task_state = None;
                    s.power_state = if running { 1 } else { 4 };
                    if !running && action != PowerAction::Stop {
                        s.vm_state = "error".into();
                    }
                    s.fault = Some(Fault { code: 500, message, created: Utc::now() });
                })
                .await
            }
        };
        if let Err(e) = r {
            tracing::error!(server = %id, error = ?e, "could not record a power action");
        }
    }

    /// Makes the recorded power state follow the guests: one that powered itself off (its
    /// QEMU exited) becomes SHUTOFF. Servers with a task in progress are left to it.
    pub async fn reconcile(&self) -> crate::service::Result<()> {
        let gone: Vec<String> = self
            .model()
            .servers
            .values()
            .filter(|s| matches!(s.vm_state.as_str(), "active" | "paused") && s.task_state.is_none())
            .filter(|s| qemu::running_pid(&self.domain(s)).is_none())
            .map(|s| s.id.clone())
            .collect();
        for id in gone {
            tracing::info!(server = %id, "guest powered off; server is SHUTOFF");
            self.set_state(&id, |s| {
                if s.task_state.is_none() {
                    s.vm_state = "stopped".into();
                    s.power_state = 4;
                }
            })
            .await?;
        }
        Ok(())
    }
}
