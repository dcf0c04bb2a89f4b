//! Building, deleting and recovering servers, and their power actions.
//!
//! A build is a persisted workflow ([`crate::service::workflow`]) of four steps, [`BUILD_STEPS`]:
//! `claim` (the scheduler picks a host and claims the server's resources in placement,
//! `crate::service::scheduler`; a server that fits nowhere ends in ERROR with Nova's "No valid host"
//! fault), `ports` (made or bound on the network service), `spec` (the host's agent is sent
//! the server's spec, `crate::service::agents`, and makes it so: image cached, qcow2 overlay, config
//! drive, QEMU started) and `active`. A failed step undoes the ones before it (the instance
//! removed, the ports deleted or let go, the claim released) and the server ends in ERROR
//! with the reason as its fault; a restart of the controller carries every build on from the
//! step it stood at.

use std::sync::Arc;

use chrono::Utc;
use haneul_contracts::agent::{Observed, Power};
use hyper::Method;
use serde_json::json;

use crate::model::{Fault, Server};
use crate::service::agents::AgentError;
use crate::service::workflow::{StepError, Steps, Workflow};
use crate::service::{Compute, Error};
use haneul_core::client::ClientError;
use haneul_core::service::BoxFuture;

/// The workflow kind of a server's build, and its steps.
pub const BUILD_KIND: &str = "build";
pub const BUILD_STEPS: &[&str] = &["claim", "ports", "spec", "active"];
const BUILD_EVENT: &str = "compute__do_build_and_run_instance";

/// A server's build as a workflow, begun in the same write that makes the server: `image` is
/// the image document, whose properties take part in scheduling.
pub fn build_workflow(server_id: &str, request_id: &str, image: &serde_json::Value) -> Workflow {
    Workflow::new(BUILD_KIND, server_id, request_id, BUILD_STEPS, json!({"image": image}))
}

/// The steps of a build.
pub struct Build;

impl Steps for Build {
    fn kind(&self) -> &'static str {
        BUILD_KIND
    }
    fn names(&self) -> &'static [&'static str] {
        BUILD_STEPS
    }
    fn run<'a>(&'a self, c: &'a Arc<Compute>, wf: &'a Workflow, step: &'a str) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let id = wf.subject.as_str();
            let Some(server) = c.model().servers.get(id).cloned() else { return Err(StepError::Gone) };
            let rid = wf.request_id.as_str();
            match step {
                "claim" => c.build_claim(&server, rid, &wf.input["image"]).await,
                "ports" => c.build_ports(&server).await,
                "spec" => {
                    c.push(id, Power::Running, |_| {}).await.map(|_| ()).map_err(|e| StepError::Failed(e.fault()))
                }
                "active" => {
                    c.set_state(id, |s| {
                        s.vm_state = "active".into();
                        s.task_state = None;
                        s.power_state = 1;
                        s.launched_at = Some(Utc::now());
                    })
                    .await
                    .map_err(|e| StepError::Failed(haneul_core::service::chain(&e)))?;
                    tracing::info!(server = %id, host = server.host.as_deref().unwrap_or_default(), "server active");
                    c.event_finish(rid, BUILD_EVENT, Ok(())).await;
                    Ok(())
                }
                other => Err(StepError::Failed(format!("a build has no step {other}"))),
            }
        })
    }
    fn undo<'a>(&'a self, c: &'a Arc<Compute>, wf: &'a Workflow, step: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let id = wf.subject.as_str();
            let server = c.model().servers.get(id).cloned();
            match step {
                "claim" => c.release(id).await,
                "ports" => {
                    c.clear_build_ports(id, server.as_deref()).await;
                    let _ = c.set_state(id, |s| s.ports.clear()).await;
                }
                "spec" => {
                    // As Nova does for a failed build: the instance goes.
                    if let Some(host) = server.as_ref().and_then(|s| s.host.clone()) {
                        let path = format!("/v1/instances/{id}");
                        if let Err(e) = c.agent_call(&host, Method::DELETE, &path, None).await {
                            tracing::warn!(server = %id, error = %e.fault(), "could not remove a failed instance");
                        }
                    }
                }
                _ => {}
            }
        })
    }
    fn failed<'a>(&'a self, c: &'a Arc<Compute>, wf: &'a Workflow, why: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if why.is_empty() {
                return;
            }
            tracing::warn!(server = %wf.subject, message = %why, "build failed");
            c.event_finish(&wf.request_id, BUILD_EVENT, Err(why)).await;
            c.fail(&wf.subject, why.to_string()).await;
        })
    }
}

impl Compute {
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

    async fn fail(&self, id: &str, message: String) {
        let _ = self
            .set_state(id, |s| {
                s.vm_state = "error".into();
                s.task_state = None;
                s.power_state = 0;
                s.fault = Some(Fault { code: 500, message, created: Utc::now() });
            })
            .await;
    }

    /// Starts a server's build (its workflow already written with the server).
    pub fn start_build(self: &Arc<Self>, server_id: &str) {
        let (c, id) = (self.clone(), format!("{BUILD_KIND}/{server_id}"));
        tokio::spawn(async move { c.drive(&Build, &id).await });
    }

    /// The build's claim: the host the server's placement allocation is on when an earlier
    /// try already claimed, else the scheduler's pick and claim.
    async fn build_claim(&self, server: &Server, rid: &str, image: &serde_json::Value) -> Result<(), StepError> {
        let id = server.id.as_str();
        let claimed = self.placement.model().consumers.get(id).and_then(|c| {
            let roots: Vec<&String> = c.allocations.keys().collect();
            self.hosts().into_iter().find(|h| roots.contains(&&h.provider))
        });
        let host = match claimed {
            Some(h) => h,
            None => match self.schedule(server, image).await {
                Ok(h) => h,
                Err(e) => {
                    // Nova's fault text; the cause (a failed claim write) is in the log.
                    let message = e.to_string();
                    self.event_start(rid, "conductor_schedule_and_build_instances", None).await;
                    self.event_finish(rid, "conductor_schedule_and_build_instances", Err(&message)).await;
                    return Err(StepError::Failed(message));
                }
            },
        };
        self.event_start(rid, BUILD_EVENT, Some(&host.name)).await;
        let zone = self.model().host_zone(&host.name);
        self.set_state(id, |s| {
            s.host = Some(host.name.clone());
            s.availability_zone = zone;
            s.task_state = Some("spawning".into());
        })
        .await
        .map_err(|e| StepError::Failed(haneul_core::service::chain(&e)))?;
        if self.model().servers.get(id).is_none() {
            return Err(StepError::Gone);
        }
        Ok(())
    }

    /// The build's ports, made anew: what an earlier, cut-short try made is cleared first.
    async fn build_ports(&self, server: &Server) -> Result<(), StepError> {
        let id = server.id.as_str();
        if server.requested_networks.is_empty() {
            return Ok(());
        }
        let host = server.host.clone().unwrap_or_default();
        self.clear_build_ports(id, Some(server)).await;
        let plugged = self
            .plug_ports(id, &server.project_id, &host, &server.requested_networks, &server.security_groups, &[])
            .await
            .map_err(|why| {
                StepError::Failed(format!("Build of instance {id} aborted: {}", haneul_core::service::chain(&why)))
            })?;
        if let Err(e) = self.set_state(id, |s| s.ports = plugged.clone()).await {
            self.release_ports(id, &plugged).await;
            return Err(StepError::Failed(haneul_core::service::chain(&e)));
        }
        if self.model().servers.get(id).is_none() {
            self.release_ports(id, &plugged).await;
            return Err(StepError::Gone);
        }
        Ok(())
    }

    /// Removes the server's instance from its host, then the server. A host whose service is
    /// down cannot be asked: the server goes anyway (Nova's local delete) and the agent
    /// removes the orphan instance when it reports again.
    pub async fn destroy(&self, id: &str, request_id: &str) -> crate::service::Result<()> {
        self.interface_locks.lock().unwrap().remove(id);
        if let Some(host) = self.model().servers.get(id).and_then(|s| s.host.clone()) {
            const TERMINATE: &str = "compute_terminate_instance";
            self.event_start(request_id, TERMINATE, Some(&host)).await;
            let path = format!("/v1/instances/{id}");
            if let Err(e) = self.agent_call(&host, Method::DELETE, &path, None).await {
                let up = crate::service::hosts::compute_service(&self.model(), &host)
                    .is_some_and(|s| self.is_up(s, Utc::now()));
                self.event_finish(request_id, TERMINATE, Err(&e.fault())).await;
                if up {
                    return Err(Error::Agent(e));
                }
                tracing::warn!(server = %id, %host, error = %e.fault(), "host is down; deleting the server locally");
            } else {
                self.event_finish(request_id, TERMINATE, Ok(())).await;
            }
        }
        if let Some(s) = self.model().servers.get(id).cloned() {
            if !s.ports.is_empty() || !s.requested_networks.is_empty() {
                self.unplug(id, &s.ports).await;
            }
        }
        self.release(id).await;
        if let Some(r) = self.model().servers.get(id).and_then(|s| s.resize.clone()) {
            self.release(&r.migration_id).await;
        }
        self.write(|t| {
            if let Some(gid) = t.m.servers.get(id).and_then(|s| s.group.clone()) {
                if let Some(g) = t.m.server_groups.get(&gid) {
                    let mut g = (**g).clone();
                    g.members.retain(|m| m != id);
                    t.put(g)?;
                }
            }
            if let Some(s) = t.m.servers.get(id).cloned() {
                crate::service::actions::tombstone(t, &s)?;
            }
            t.delete::<Server>(id);
            Ok(())
        })
        .await
    }

    /// After a restart of the controller: the builds under way go on from the step they
    /// stood at (see [`crate::service::workflow`]). A server left building by a release before
    /// workflows has none to go on with and ends in ERROR. Running instances are the agents'
    /// business; their reports keep the power states right.
    pub async fn recover(self: &Arc<Self>) -> crate::service::Result<()> {
        let m = self.model();
        let orphans: Vec<String> = m
            .servers
            .values()
            .filter(|s| s.vm_state == "building" && !m.workflows.contains_key(&format!("{}/{}", BUILD_KIND, s.id)))
            .map(|s| s.id.clone())
            .collect();
        for id in orphans {
            self.release(&id).await;
            tracing::warn!(server = %id, "build interrupted by a restart; server is in ERROR");
            self.fail(&id, "The build was interrupted by a restart of the compute service.".into()).await;
        }
        self.resume_workflows(vec![Arc::new(Build)]);
        Ok(())
    }
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

impl Compute {
    /// Rebuilds the server's root disk from its (new) image; the power state it had stays.
    pub async fn rebuild(self: Arc<Self>, id: String, request_id: String) {
        const EVENT: &str = "compute_rebuild_instance";
        let Some(s) = self.model().servers.get(&id).cloned() else { return };
        let stopped = s.vm_state == "stopped";
        let power = if stopped { Power::Shutoff } else { Power::Running };
        self.step(
            &id,
            &request_id,
            EVENT,
            power,
            |s| s.rebuilds += 1,
            |s| {
                s.vm_state = if stopped { "stopped" } else { "active" }.into();
                s.power_state = if stopped { 4 } else { 1 };
                s.launched_at = Some(Utc::now());
            },
        )
        .await;
    }

    /// Sends the server's next spec (`power`, with `change` made first) to its host's agent
    /// inside the instance action's event `event`, which records the outcome.
    async fn push_in_event(
        &self,
        id: &str,
        request_id: &str,
        event: &str,
        power: Power,
        change: impl FnOnce(&mut Server) + Send,
    ) -> std::result::Result<Observed, AgentError> {
        let host = self.model().servers.get(id).and_then(|s| s.host.clone());
        self.event_start(request_id, event, host.as_deref()).await;
        let result = self.push(id, power, change).await;
        let fault = result.as_ref().err().map(AgentError::fault);
        self.event_finish(request_id, event, fault.as_deref().map_or(Ok(()), Err)).await;
        result
    }

    /// One step of an action on the server's host ([`Compute::push_in_event`]); done, the
    /// server settles as `done` says with no task; failed, it is in ERROR with the reason as
    /// its fault.
    async fn step(
        &self,
        id: &str,
        request_id: &str,
        event: &str,
        power: Power,
        change: impl FnOnce(&mut Server) + Send,
        done: impl FnOnce(&mut Server),
    ) {
        match self.push_in_event(id, request_id, event, power, change).await {
            Ok(_) => {
                let r = self
                    .set_state(id, |s| {
                        done(s);
                        s.task_state = None;
                    })
                    .await;
                if let Err(e) = r {
                    tracing::error!(server = %id, event, error = ?e, "could not record the end of a step");
                }
            }
            Err(e) => {
                let message = e.fault();
                tracing::warn!(server = %id, event, %message, "step failed");
                self.fail(id, message).await;
            }
        }
    }
}

impl Compute {
    /// Copies the server's root disk into image `image_id` (created by the API, as the
    /// user); the server keeps its state. A failed snapshot deletes the image, as Nova does.
    /// A backup (`rotation`: its type and how many to keep) then deletes the server's oldest
    /// backups of that type beyond the newest `rotation`.
    pub async fn snapshot(
        self: Arc<Self>,
        id: String,
        image_id: String,
        rotation: Option<(String, u64)>,
        request_id: String,
    ) {
        let event = if rotation.is_some() { "compute_backup_instance" } else { "compute_snapshot_instance" };
        let host = self.model().servers.get(&id).and_then(|s| s.host.clone());
        self.event_start(&request_id, event, host.as_deref()).await;
        let _ = self.set_state(&id, |s| s.task_state = Some("image_uploading".into())).await;
        let result = match &host {
            Some(h) => {
                let path = format!("/v1/instances/{id}/snapshot");
                let body = json!({"image_id": image_id});
                let within = std::time::Duration::from_secs(3600);
                self.agent_call_within(h, Method::POST, &path, Some(body), within).await.map(|_| ())
            }
            None => Err(AgentError::NoHost { server: id.clone() }),
        }
        .map_err(|e| e.fault());
        self.event_finish(&request_id, event, result.as_ref().map(|_| ()).map_err(String::as_str)).await;
        match (&result, rotation) {
            (Err(message), _) => {
                tracing::warn!(server = %id, image = %image_id, %message, "snapshot failed; deleting its image");
                if let Err(e) = self.delete_image(&image_id).await {
                    tracing::warn!(image = %image_id, error = %e, "could not delete the image of a failed snapshot");
                }
            }
            (Ok(()), Some((backup_type, keep))) => {
                if let Err(e) = self.rotate_backups(&id, &backup_type, keep).await {
                    tracing::warn!(server = %id, error = %e, "could not rotate the server's backups");
                }
            }
            (Ok(()), None) => {}
        }
        let r = self.set_state(&id, |s| s.task_state = None).await;
        if let Err(e) = r {
            tracing::error!(server = %id, error = ?e, "could not record a snapshot's end");
        }
    }

    /// Deletes the server's backups of `backup_type` but the newest `keep`.
    async fn rotate_backups(&self, id: &str, backup_type: &str, keep: u64) -> std::result::Result<(), ClientError> {
        let token = self.service.token().await?;
        let mut backups: Vec<serde_json::Value> = self
            .images_visible_to(&token)
            .await?
            .into_iter()
            .filter(|i| i["instance_uuid"] == id && i["image_type"] == "backup" && i["backup_type"] == backup_type)
            .collect();
        backups.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
        for old in backups.iter().skip(keep as usize) {
            if let Some(image) = old["id"].as_str() {
                tracing::info!(server = %id, %image, "rotating out an old backup");
                self.delete_image(image).await?;
            }
        }
        Ok(())
    }

    /// Every image `token` sees in the image service, newest first (all pages).
    pub async fn images_visible_to(
        &self,
        token: &str,
    ) -> std::result::Result<Vec<serde_json::Value>, haneul_core::client::ClientError> {
        self.images.list_all(token).await
    }

    /// Deletes an image as the service user.
    pub async fn delete_image(&self, image_id: &str) -> std::result::Result<(), ClientError> {
        let token = self.service.token().await?;
        self.images.delete(&token, image_id).await
    }
}

impl Compute {
    /// Resizes the server to `flavor` on its own host (Nova's resize with
    /// `allow_resize_to_same_host`): the claim in placement, then the agent, which keeps the
    /// disk as it was, grows it and restarts the guest with the new memory and vCPUs. The
    /// server then waits in VERIFY_RESIZE for a confirm or a revert. No room on the host:
    /// the server stays as it was, the action's event says why.
    pub async fn resize(self: Arc<Self>, id: String, flavor: crate::model::FlavorCopy, request_id: String) {
        let rid = request_id.as_str();
        let Some(s) = self.model().servers.get(&id).cloned() else { return };
        const PREP: &str = "compute_prep_resize";
        self.event_start(rid, PREP, s.host.as_deref()).await;
        let migration_id = uuid::Uuid::new_v4().to_string();
        self.record_migration(&s, &migration_id, &flavor.id).await;
        if let Err(e) = self.claim_resize(&s, &flavor, &migration_id).await {
            self.event_finish(rid, PREP, Err(&e.to_string())).await;
            let _ = self.set_state(&id, |s| s.task_state = None).await;
            self.migration_status(&migration_id, "error").await;
            return;
        }
        self.event_finish(rid, PREP, Ok(())).await;
        let was_stopped = s.vm_state == "stopped";
        let resize = crate::model::Resize {
            migration_id: migration_id.clone(),
            old_flavor: s.flavor.clone(),
            was_stopped,
            created_at: Utc::now(),
        };
        let power = if was_stopped { Power::Shutoff } else { Power::Running };
        let change = |s: &mut Server| {
            s.flavor = flavor;
            s.resize = Some(resize);
            s.task_state = Some("resize_finish".into());
        };
        self.step(&id, rid, "compute_resize_instance", power, change, |s| {
            s.vm_state = "resized".into();
            s.power_state = if was_stopped { 4 } else { 1 };
        })
        .await;
        let resized = self.model().servers.get(&id).is_some_and(|s| s.vm_state == "resized");
        self.migration_status(&migration_id, if resized { "finished" } else { "error" }).await;
    }

    /// The migration record of a resize of `s` to `new_flavor`, on its own host.
    async fn record_migration(&self, s: &Server, id: &str, new_flavor: &str) {
        let host = s.host.clone().unwrap_or_default();
        let r = self
            .write(|t| {
                let number = t.m.migrations.values().map(|m| m.number).max().unwrap_or(0) + 1;
                t.put(crate::model::Migration {
                    id: id.to_owned(),
                    number,
                    server_id: s.id.clone(),
                    project_id: s.project_id.clone(),
                    user_id: s.user_id.clone(),
                    kind: "resize".into(),
                    status: "migrating".into(),
                    source_compute: host.clone(),
                    dest_compute: host,
                    old_flavor_id: s.flavor.id.clone(),
                    new_flavor_id: new_flavor.to_owned(),
                    created_at: Utc::now(),
                    updated_at: None,
                })?;
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = ?e, migration = id, "the migration record was not written");
        }
    }

    async fn migration_status(&self, id: &str, status: &str) {
        let r = self
            .write(|t| {
                let Some(mut m) = t.m.migrations.get(id).map(|m| (**m).clone()) else { return Ok(()) };
                m.status = status.to_owned();
                m.updated_at = Some(Utc::now());
                t.put(m)?;
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = ?e, migration = id, "the migration's status was not written");
        }
    }

    /// Ends a resize: confirmed, the kept disk and the old flavor's resources go; reverted,
    /// the kept disk and the old flavor come back. The server is as before the resize
    /// (running or stopped).
    pub async fn finish_resize(self: Arc<Self>, id: String, revert: bool, request_id: String) {
        let event = if revert { "compute_revert_resize" } else { "compute_confirm_resize" };
        let Some(s) = self.model().servers.get(&id).cloned() else { return };
        let Some(resize) = s.resize.clone() else { return };
        let stopped = resize.was_stopped;
        let power = if stopped { Power::Shutoff } else { Power::Running };
        let old_flavor = resize.old_flavor.clone();
        let change = |s: &mut Server| {
            s.resize = None;
            if revert {
                s.flavor = old_flavor;
                s.reverts += 1;
            }
        };
        self.step(&id, &request_id, event, power, change, |s| {
            s.vm_state = if stopped { "stopped" } else { "active" }.into();
            s.power_state = if stopped { 4 } else { 1 };
        })
        .await;
        // The claim ends either way: the server no longer records the resize.
        self.end_resize_claim(&s, &resize.migration_id, revert).await;
        self.migration_status(&resize.migration_id, if revert { "reverted" } else { "confirmed" }).await;
    }
}

impl Compute {
    /// Into rescue (`image`: the rescue image and its disk format) or out of it (`None`).
    /// The guest runs either way, as in Nova.
    pub async fn rescue(self: Arc<Self>, id: String, image: Option<(String, String)>, request_id: String) {
        let entering = image.is_some();
        let event = if entering { "compute_rescue_instance" } else { "compute_unrescue_instance" };
        self.step(
            &id,
            &request_id,
            event,
            Power::Running,
            |s| s.rescue_image = image,
            |s| {
                s.vm_state = if entering { "rescued" } else { "active" }.into();
                s.power_state = 1;
            },
        )
        .await;
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
    Suspend,
    Resume,
}

impl PowerAction {
    /// The instance action Nova records, and its event.
    pub fn action(self) -> &'static str {
        match self {
            PowerAction::Stop => "stop",
            PowerAction::Start => "start",
            PowerAction::RebootSoft | PowerAction::RebootHard => "reboot",
            PowerAction::Pause => "pause",
            PowerAction::Unpause => "unpause",
            PowerAction::Suspend => "suspend",
            PowerAction::Resume => "resume",
        }
    }

    pub fn event(self) -> &'static str {
        match self {
            PowerAction::Stop => "compute_stop_instance",
            PowerAction::Start => "compute_start_instance",
            PowerAction::RebootSoft | PowerAction::RebootHard => "compute_reboot_instance",
            PowerAction::Pause => "compute_pause_instance",
            PowerAction::Unpause => "compute_unpause_instance",
            PowerAction::Suspend => "compute_suspend_instance",
            PowerAction::Resume => "compute_resume_instance",
        }
    }

    /// The task state while it runs, and the vm states it may start from.
    pub fn task_and_sources(self) -> (&'static str, &'static [&'static str]) {
        match self {
            PowerAction::Stop => ("powering-off", &["active", "error"]),
            PowerAction::Start => ("powering-on", &["stopped"]),
            PowerAction::RebootSoft => ("rebooting", &["active"]),
            PowerAction::RebootHard => ("rebooting_hard", &["active", "stopped", "paused", "error"]),
            PowerAction::Pause => ("pausing", &["active"]),
            PowerAction::Unpause => ("unpausing", &["paused"]),
            PowerAction::Suspend => ("suspending", &["active"]),
            PowerAction::Resume => ("resuming", &["suspended"]),
        }
    }
}

impl Compute {
    /// Runs a power action (the API checked the state and set the task); records the result.
    pub async fn power(self: Arc<Self>, id: String, action: PowerAction, request_id: String) {
        let (power, vm_state, power_state) = match action {
            PowerAction::Stop => (Power::Shutoff, "stopped", 4),
            PowerAction::Pause => (Power::Paused, "paused", 3),
            // As Nova's libvirt driver reports a suspended (saved) guest: shut down.
            PowerAction::Suspend => (Power::Suspended, "suspended", 4),
            PowerAction::Start
            | PowerAction::RebootSoft
            | PowerAction::RebootHard
            | PowerAction::Unpause
            | PowerAction::Resume => (Power::Running, "active", 1),
        };
        let change = |s: &mut Server| match action {
            PowerAction::RebootSoft => s.reboots += 1,
            PowerAction::RebootHard => s.hard_reboots += 1,
            _ => {}
        };
        let result = self.push_in_event(&id, &request_id, action.event(), power, change).await;
        let r = match result {
            Ok(_) => {
                self.set_state(&id, |s| {
                    s.vm_state = vm_state.into();
                    s.power_state = power_state;
                    s.task_state = None;
                })
                .await
            }
            Err(e) => {
                let message = e.fault();
                tracing::warn!(server = %id, ?action, %message, "power action failed");
                let host = self.model().servers.get(&id).and_then(|s| s.host.clone()).unwrap_or_default();
                let observed = self.agent_call(&host, Method::GET, &format!("/v1/instances/{id}"), None).await.ok();
                let running =
                    observed.as_ref().is_some_and(|o| matches!(o["power"].as_str(), Some("running" | "paused")));
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
}
