//! Instance actions: each request that changes a server is recorded under its request id
//! (the `x-openstack-request-id` the caller got back), with the events its work went
//! through (`compute__do_build_and_run_instance`, `compute_stop_instance`, ...), as Nova
//! records them. The record of a deleted server stays, with what its usage needs.

use chrono::Utc;

use crate::model::{ActionEvent, DeletedServer, InstanceAction, Server};
use crate::service::{Compute, Result, Txn};

/// Records that `request_id` started `action` on `server`, in the write that changes it.
pub fn record(
    t: &mut Txn,
    request_id: &str,
    server: &Server,
    action: &str,
    user_id: &str,
    project_id: &str,
) -> Result<()> {
    let now = Utc::now();
    t.log(&InstanceAction {
        id: request_id.to_string(),
        server_id: server.id.clone(),
        action: action.to_string(),
        project_id: project_id.to_string(),
        user_id: user_id.to_string(),
        start_time: now,
        updated_at: now,
        message: None,
        events: vec![],
    });
    Ok(())
}

/// Keeps what a deleted server leaves behind (in the write that deletes it).
pub fn tombstone(t: &mut Txn, s: &Server) -> Result<()> {
    t.log(&DeletedServer {
        id: s.id.clone(),
        name: s.name.clone(),
        project_id: s.project_id.clone(),
        user_id: s.user_id.clone(),
        flavor: s.flavor.clone(),
        launched_at: s.launched_at,
        terminated_at: Utc::now(),
    });
    Ok(())
}

impl Compute {
    /// Changes the action `request_id` (gone or unknown: nothing to do); logged, never
    /// failing the work it describes.
    async fn update_action(&self, request_id: &str, event: &str, f: impl Fn(&mut InstanceAction) + Send) {
        let r = self
            .store()
            .log_update::<InstanceAction>(request_id, |a| {
                f(a);
                a.updated_at = Utc::now();
                true
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(request_id, event, error = %haneul_core::service::chain(&e), "could not record an instance action event");
        }
    }

    /// An event of the action begins.
    pub async fn event_start(&self, request_id: &str, event: &str, host: Option<&str>) {
        self.update_action(request_id, event, |a| {
            a.events.push(ActionEvent {
                event: event.to_string(),
                start_time: Utc::now(),
                finish_time: None,
                result: None,
                details: None,
                host: host.map(str::to_owned),
            })
        })
        .await
    }

    /// The event ends: `Ok` is `Success`, `Err` carries the reason (`Error`, and the action's
    /// message becomes `Error`).
    pub async fn event_finish(&self, request_id: &str, event: &str, outcome: std::result::Result<(), &str>) {
        self.update_action(request_id, event, |a| {
            if let Some(e) = a.events.iter_mut().rev().find(|e| e.event == event && e.finish_time.is_none()) {
                e.finish_time = Some(Utc::now());
                e.result = Some(if outcome.is_ok() { "Success" } else { "Error" }.into());
                e.details = outcome.err().map(|m| m.chars().take(255).collect());
            }
            if outcome.is_err() {
                a.message = Some("Error".into());
            }
        })
        .await
    }
}

/// What [`purge`] deleted.
#[derive(Debug, Default)]
pub struct Purged {
    pub deleted_servers: u64,
    pub actions: u64,
}

/// `haneul db purge --before`: deletes what stays of servers deleted before `before` and the
/// instance actions of deleted servers last changed before it; a live server's actions stay.
pub async fn purge(config: &haneul_core::config::Config, before: chrono::DateTime<Utc>) -> Result<Purged> {
    let store =
        haneul_core::docstore::Store::open(&config.compute_database_url(), "compute", crate::model::TABLES, &[])
            .await?;
    store.ensure_logs(&crate::model::LOGS.iter().map(|(t, _)| *t).collect::<Vec<_>>()).await?;
    let live = haneul_core::docstore::State::<crate::model::Model>::open(store.clone()).await?.model();
    let deleted_servers = store.log_purge::<DeletedServer>(before, |_| false).await?;
    let actions = store.log_purge::<InstanceAction>(before, |server| live.servers.contains_key(server)).await?;
    Ok(Purged { deleted_servers, actions })
}
