//! The skeleton every service implements, and the one loop that runs them.
//!
//! A service is opened by its crate (its state, its policy file), then handed to [`run`] as
//! an `Arc<dyn Service>`: [`run`] serves its APIs on listeners bound beforehand, refreshes its
//! state from the database and reloads its policy every second, starts its long-running
//! tasks, and asks it to stop on SIGTERM or Ctrl-C. `haneul serve` and `haneul agent` are both
//! this loop over different lists of services; a new service writes one `impl Service` and
//! one line in the binary, not a listener block.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

pub use futures_util::future::BoxFuture;

use crate::policy::PolicyFile;

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// A service this process serves, to be put in the identity catalog.
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    pub kind: &'static str,
    pub name: &'static str,
    /// Endpoint URL for all three interfaces.
    pub url: String,
    /// Registered default limits (unified limits) of the service: resource name and value.
    /// Created when missing; an operator's changes are kept.
    pub limits: &'static [(&'static str, i64)],
}

/// One HTTP API of a service: its name (the key of its listener, see
/// [`crate::config::Config::listeners`]) and its router.
pub struct Api {
    pub name: &'static str,
    pub router: axum::Router,
}

/// What every service of the cloud is to the process that runs it.
pub trait Service: Send + Sync + 'static {
    /// The service's name, as `server.services` and the logs name it.
    fn name(&self) -> &'static str;
    /// The HTTP APIs it serves, each on the listener of the same name.
    fn apis(&self) -> Vec<Api>;
    /// Picks up what other processes wrote to the same database; `Ok(true)` when the state
    /// changed.
    fn refresh(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async { Ok(false) })
    }
    /// The policy file, whose failed reloads [`run`] reports.
    fn policy(&self) -> Option<&PolicyFile> {
        None
    }
    /// Work due every second besides the refresh (key reloads, heartbeats).
    fn tick(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }
    /// Long-running tasks (an agent's reporter, the data plane, pruning), spawned once when
    /// the listeners are up.
    fn tasks(&self) -> Vec<BoxFuture<'static, ()>> {
        Vec::new()
    }
    /// Called once when the process is asked to stop, before the listeners close.
    fn stop(&self) {}
}

/// What a service's state gives the skeleton: its refresh from the database, its policy file,
/// work due every second, and what to do on stop. [`Stateful`] makes a [`Service`] of it.
pub trait ServiceState: Send + Sync + 'static {
    fn refresh_state(&self) -> BoxFuture<'_, Result<bool, BoxError>>;
    fn policy_file(&self) -> &PolicyFile;
    fn tick(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }
    fn stop(&self) {}
}

/// A service that is one state and the HTTP APIs built from it (image, placement, network,
/// compute): `Stateful::serve("image", images, move |s| vec![Api { .. }])`.
pub struct Stateful<S> {
    name: &'static str,
    state: Arc<S>,
    apis: ApiBuilder<S>,
}

type ApiBuilder<S> = Box<dyn Fn(&Arc<S>) -> Vec<Api> + Send + Sync>;

impl<S: ServiceState> Stateful<S> {
    pub fn serve(
        name: &'static str,
        state: Arc<S>,
        apis: impl Fn(&Arc<S>) -> Vec<Api> + Send + Sync + 'static,
    ) -> Arc<dyn Service> {
        Arc::new(Stateful { name, state, apis: Box::new(apis) })
    }
}

impl<S: ServiceState> Service for Stateful<S> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn apis(&self) -> Vec<Api> {
        (self.apis)(&self.state)
    }
    fn refresh(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        self.state.refresh_state()
    }
    fn policy(&self) -> Option<&PolicyFile> {
        Some(self.state.policy_file())
    }
    fn tick(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        self.state.tick()
    }
    fn stop(&self) {
        self.state.stop()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("binding {what} on {addr}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("service {service} serves the API {api}, which has no listener")]
    NoListener { service: &'static str, api: &'static str },
    #[error("serving {what}")]
    Serve {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The bound listeners, by API name: bound before any service opens its state, so that a
/// port in use is reported before anything is written.
pub struct Listeners(BTreeMap<&'static str, (String, tokio::net::TcpListener)>);

impl Listeners {
    /// Binds `bind:port` for each `(api, port)`.
    pub async fn bind(bind: &str, ports: &[(&'static str, u16)]) -> Result<Listeners, RunError> {
        let mut out = BTreeMap::new();
        for &(what, port) in ports {
            let addr = format!("{bind}:{port}");
            let l = tokio::net::TcpListener::bind(&addr).await.map_err(|source| RunError::Bind {
                what,
                addr: addr.clone(),
                source,
            })?;
            out.insert(what, (addr, l));
        }
        Ok(Listeners(out))
    }

    /// `api=address` pairs, for the log line that says the process is up.
    pub fn describe(&self) -> String {
        self.0.iter().map(|(k, (a, _))| format!("{k}={a}")).collect::<Vec<_>>().join(" ")
    }
}

/// Serves `services` on `listeners` until SIGTERM or Ctrl-C, refreshing each every second.
/// Fails when a listener fails; a failed refresh or policy reload is logged and retried.
pub async fn run(mut listeners: Listeners, services: Vec<Arc<dyn Service>>) -> Result<(), RunError> {
    let mut routed = Vec::new();
    for svc in &services {
        for api in svc.apis() {
            let (_, listener) =
                listeners.0.remove(api.name).ok_or(RunError::NoListener { service: svc.name(), api: api.name })?;
            routed.push((api.name, listener, api.router));
        }
    }
    if let Some(what) = listeners.0.keys().next() {
        tracing::warn!(api = what, "a listener was bound that no service serves");
    }
    let ticking = services.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            for svc in &ticking {
                every_second(svc.as_ref()).await;
            }
        }
    });
    for svc in &services {
        for task in svc.tasks() {
            tokio::spawn(task);
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopping = services.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        for svc in &stopping {
            svc.stop();
        }
        let _ = stop_tx.send(true);
    });
    let mut servers = tokio::task::JoinSet::new();
    for (what, listener, router) in routed {
        let mut rx = stop_rx.clone();
        let stopped = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        servers.spawn(async move { crate::http::serve(listener, router, stopped).await.map_err(|e| (what, e)) });
    }
    while let Some(done) = servers.join_next().await {
        if let Ok(Err((what, source))) = done {
            return Err(RunError::Serve { what, source });
        }
    }
    tracing::info!("stopped");
    Ok(())
}

async fn every_second(svc: &dyn Service) {
    let name = svc.name();
    match svc.refresh().await {
        Ok(true) => tracing::info!(service = name, "data changed by another process; reloaded"),
        Ok(false) => {}
        Err(e) => tracing::warn!(service = name, error = %chain(e.as_ref()), "data could not be refreshed"),
    }
    if let Some(e) = svc.policy().and_then(PolicyFile::take_reload_error) {
        tracing::warn!(service = name, error = %chain(&e), "policy file not reloaded; keeping the previous rules");
    }
    if let Err(e) = svc.tick().await {
        tracing::warn!(service = name, error = %chain(e.as_ref()), "periodic work failed");
    }
}

/// An error and its causes, `outer: inner: ...`.
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
