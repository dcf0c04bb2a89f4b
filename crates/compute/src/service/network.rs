//! Servers on networks: the compute service asks the network service (its public API, as the
//! service user) for the ports of a server, as Nova asks Neutron. At create the requested
//! networks and ports are checked; when the build has a host, the ports are made (or taken
//! over) and bound to it; at delete they go (ports the user brought are only let go).

use haneul_core::service::chain;
use hyper::Method;
use serde_json::{json, Value};

use crate::service::{AttachError, Compute, Error};

pub use crate::model::{NetRequest, ServerPort};

/// The guest PCI slots NICs go in: clear of the slots QEMU gives its other devices (from 2
/// up), so a NIC plugged in later sits where a fresh start puts it. 16 NICs at most.
pub const SLOTS: std::ops::Range<u8> = 0x10..0x20;

/// The lowest NIC slot none of `ports` uses.
pub fn free_slot<'a>(ports: impl Iterator<Item = &'a ServerPort> + Clone) -> Option<u8> {
    SLOTS.into_iter().find(|s| !ports.clone().any(|p| p.slot == Some(*s)))
}

/// What went wrong with a call to the network service.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The network service answered with a fault: the status it answered and Neutron's
    /// message.
    #[error("{message}")]
    Refused { status: u16, message: String },
    /// No answer, or none that was a fault.
    #[error("the network service is unavailable")]
    Unavailable(#[source] haneul_core::client::ClientError),
}

impl NetError {
    /// The status the network service answered with; `None` when it did not answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            NetError::Refused { status, .. } => Some(*status),
            NetError::Unavailable(_) => None,
        }
    }

    /// What a client is told: Neutron's message, or why the network service could not be
    /// asked (with the causes).
    pub fn message(&self) -> String {
        chain(self)
    }
}

/// Why a server's requested networks cannot be used, in Nova's words.
#[derive(Debug, thiserror::Error)]
pub enum NetworksError {
    #[error("Unable to automatically allocate a network for project {project}")]
    NoneUsable { project: String },
    #[error("Multiple possible networks found, use a Network ID to be more specific.")]
    Ambiguous,
    #[error("Port id {0} could not be found.")]
    PortNotFound(String),
    #[error("Port {0} is still in use.")]
    PortInUse(String),
    #[error("Network {0} could not be found.")]
    NetworkNotFound(String),
    #[error("Network {0} requires a subnet in order to boot instances on.")]
    NoSubnet(String),
    #[error("Invalid fixed IP address ({0})")]
    BadFixedIp(String),
    /// Looking a network or port up failed: the network service refused, or could not be
    /// asked.
    #[error(transparent)]
    Network(#[from] NetError),
}

/// Why the security groups named for a server cannot be given to its ports.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("Unable to find security_group with name or id '{0}'")]
    NotFound(String),
    #[error(transparent)]
    Network(#[from] NetError),
}

/// Why a server's ports could not be made or bound (the reason, without saying what it
/// failed: a build, an attach).
#[derive(Debug, thiserror::Error)]
pub enum PlugError {
    #[error("no room for another network interface")]
    NoSlot,
    #[error(transparent)]
    Groups(#[from] GroupError),
    #[error(transparent)]
    Network(#[from] NetError),
}

impl Compute {
    /// A call to the network API as the service user (retried once with a new token).
    pub async fn network_call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, NetError> {
        self.network_request(method, path, body, None).await
    }

    /// A call to the network API with the caller's own token (Nova's proxies act as the
    /// user, so the network service's policy decides what they see).
    pub async fn network_call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, NetError> {
        self.network_request(method, path, body, Some(token)).await
    }

    async fn network_request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        user_token: Option<&str>,
    ) -> Result<Value, NetError> {
        let path = format!("/v2.0{path}");
        let answer = match user_token {
            None => self.service.call("network", method, &path, body).await,
            Some(token) => match self.service.endpoint("network").await {
                Ok(base) => {
                    haneul_core::client::json(method, &format!("{base}{path}"), &[("x-auth-token", token)], body).await
                }
                Err(e) => Err(e),
            },
        };
        answer.map_err(|e| match (e.status(), e.fault_message()) {
            (Some(status), Some(message)) => NetError::Refused { status, message },
            _ => NetError::Unavailable(e),
        })
    }

    /// The networks a project may put servers on without naming one: its own and shared
    /// ones, not external ones.
    async fn usable_networks(&self, project: &str) -> Result<Vec<Value>, NetError> {
        let all = self.network_call(Method::GET, "/networks", None).await?;
        Ok(all["networks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["router:external"] != json!(true))
            .filter(|n| n["project_id"] == json!(project) || n["shared"] == json!(true))
            .cloned()
            .collect())
    }

    /// Checks a create's networks for `project` (with Nova's messages) and resolves `auto`
    /// (and, before 2.37, an absent `networks`) to the one usable network. An admin
    /// (`any_project`) may name any network or free port the network service shows an
    /// admin, as in Nova; the ports are made in the server's project all the same.
    pub async fn check_networks(
        &self,
        project: &str,
        asked: NetworksArg,
        any_project: bool,
    ) -> Result<Vec<NetRequest>, NetworksError> {
        match asked {
            NetworksArg::None => Ok(Vec::new()),
            NetworksArg::Auto { required } => {
                let usable = self.usable_networks(project).await?;
                match usable.as_slice() {
                    [] if required => Err(NetworksError::NoneUsable { project: project.to_string() }),
                    [] => Ok(Vec::new()),
                    [one] => {
                        Ok(vec![NetRequest { network_id: one["id"].as_str().map(str::to_owned), ..Default::default() }])
                    }
                    _ => Err(NetworksError::Ambiguous),
                }
            }
            NetworksArg::List(list) => {
                for r in &list {
                    if let Some(pid) = &r.port_id {
                        let p = self.network_call(Method::GET, &format!("/ports/{pid}"), None).await;
                        let p = match p {
                            Ok(v) => v["port"].clone(),
                            Err(e) if e.status() == Some(404) => return Err(NetworksError::PortNotFound(pid.clone())),
                            Err(e) => return Err(e.into()),
                        };
                        if p["project_id"] != json!(project) && !any_project {
                            return Err(NetworksError::PortNotFound(pid.clone()));
                        }
                        if p["device_id"].as_str().is_some_and(|d| !d.is_empty()) {
                            return Err(NetworksError::PortInUse(pid.clone()));
                        }
                    } else if let Some(nid) = &r.network_id {
                        let n = match self.network_call(Method::GET, &format!("/networks/{nid}"), None).await {
                            Ok(v) => v["network"].clone(),
                            Err(e) if e.status() == Some(404) => {
                                return Err(NetworksError::NetworkNotFound(nid.clone()))
                            }
                            Err(e) => return Err(e.into()),
                        };
                        if n["project_id"] != json!(project) && n["shared"] != json!(true) && !any_project {
                            return Err(NetworksError::NetworkNotFound(nid.clone()));
                        }
                        if let Some(ip) = &r.fixed_ip {
                            let subnets = n["subnets"].as_array().map_or(0, Vec::len);
                            if subnets == 0 {
                                return Err(NetworksError::NoSubnet(nid.clone()));
                            }
                            if ip.parse::<std::net::IpAddr>().is_err() {
                                return Err(NetworksError::BadFixedIp(ip.clone()));
                            }
                        }
                    }
                }
                Ok(list)
            }
        }
    }

    /// Makes (or takes over) the server's ports, bound to `host`, next to the ports it has
    /// (`existing`); the ports made before a failure are removed again.
    pub async fn plug_ports(
        &self,
        server_id: &str,
        project: &str,
        host: &str,
        requests: &[NetRequest],
        security_groups: &[String],
        existing: &[ServerPort],
    ) -> Result<Vec<ServerPort>, PlugError> {
        let mut out: Vec<ServerPort> = Vec::new();
        for r in requests {
            let Some(slot) = free_slot(existing.iter().chain(&out)) else {
                self.release_ports(server_id, &out).await;
                return Err(PlugError::NoSlot);
            };
            let binding = json!({
                "device_id": server_id,
                "device_owner": "compute:nova",
                "binding:host_id": host,
            });
            let result = match (&r.port_id, &r.network_id) {
                (Some(pid), _) => {
                    self.network_call(Method::PUT, &format!("/ports/{pid}"), Some(json!({"port": binding}))).await
                }
                (None, Some(nid)) => {
                    let mut port = binding.clone();
                    port["network_id"] = json!(nid);
                    port["project_id"] = json!(project);
                    if let Some(ip) = &r.fixed_ip {
                        port["fixed_ips"] = json!([{"ip_address": ip}]);
                    }
                    match self.group_ids(project, security_groups).await {
                        Ok(Some(ids)) => port["security_groups"] = json!(ids),
                        Ok(None) => {}
                        Err(e) => {
                            self.release_ports(server_id, &out).await;
                            return Err(e.into());
                        }
                    }
                    self.network_call(Method::POST, "/ports", Some(json!({"port": port}))).await
                }
                (None, None) => continue,
            };
            let port = match result {
                Ok(v) => v["port"].clone(),
                Err(e) => {
                    self.release_ports(server_id, &out).await;
                    return Err(e.into());
                }
            };
            let network_id = port["network_id"].as_str().unwrap_or_default().to_string();
            let network = self.network_call(Method::GET, &format!("/networks/{network_id}"), None).await.ok();
            out.push(ServerPort {
                port_id: port["id"].as_str().unwrap_or_default().into(),
                network_name: network
                    .as_ref()
                    .and_then(|n| n["network"]["name"].as_str())
                    .unwrap_or(&network_id)
                    .to_string(),
                mtu: network.as_ref().and_then(|n| n["network"]["mtu"].as_u64()).unwrap_or(1500) as u32,
                network_id,
                mac: port["mac_address"].as_str().unwrap_or_default().into(),
                ips: port["fixed_ips"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["ip_address"].as_str().map(str::to_owned))
                    .collect(),
                // A port made here has no floating IP yet; one the user made may have.
                floating_ips: match &r.port_id {
                    Some(pid) => self.floating_ips_of(pid).await.unwrap_or_default(),
                    None => Vec::new(),
                },
                preexisting: r.port_id.is_some(),
                security_groups: self.group_names(&port).await,
                slot: Some(slot),
                tag: r.tag.clone(),
            });
        }
        Ok(out)
    }

    /// The floating IP addresses associated with a port.
    pub async fn floating_ips_of(&self, port_id: &str) -> Result<Vec<String>, NetError> {
        let found = self.network_call(Method::GET, &format!("/floatingips?port_id={port_id}"), None).await?;
        Ok(found["floatingips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["floating_ip_address"].as_str().map(str::to_owned))
            .collect())
    }

    /// Nova's `network-changed`: the network service says a port of the server changed (a
    /// floating IP associated or let go); its floating IPs are read again, for `tag`'s port
    /// or, without one, every port of the server.
    pub async fn refresh_ports(&self, server_id: &str, tag: Option<&str>) {
        let Some(s) = self.model().servers.get(server_id).cloned() else { return };
        let mut fresh = Vec::new();
        for p in s.ports.iter().filter(|p| tag.is_none_or(|t| t == p.port_id)) {
            match self.floating_ips_of(&p.port_id).await {
                Ok(ips) => fresh.push((p.port_id.clone(), ips)),
                Err(e) => {
                    tracing::warn!(server = server_id, port = %p.port_id, error = %e.message(), "floating IPs not read")
                }
            }
        }
        let r = self
            .set_state(server_id, |s| {
                for (port, ips) in fresh {
                    if let Some(p) = s.ports.iter_mut().find(|p| p.port_id == port) {
                        p.floating_ips = ips;
                    }
                }
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(server = server_id, error = ?e, "the server's floating IPs were not written");
        }
    }

    /// The names of a port's security groups (their ids when a name cannot be read).
    pub async fn group_names(&self, port: &Value) -> Vec<String> {
        let ids: Vec<&str> =
            port["security_groups"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if ids.is_empty() {
            return Vec::new();
        }
        let query: String = ids.iter().map(|id| format!("id={id}&")).collect();
        let groups =
            self.network_call(Method::GET, &format!("/security-groups?{query}fields=id&fields=name"), None).await;
        let groups = groups.map(|g| g["security_groups"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
        ids.iter()
            .map(|id| {
                groups
                    .iter()
                    .find(|g| g["id"] == json!(id))
                    .and_then(|g| g["name"].as_str())
                    .filter(|n| !n.is_empty())
                    .unwrap_or(id)
                    .to_string()
            })
            .collect()
    }

    /// The ids of the project's security groups named (None: the port gets the default).
    pub async fn group_ids(&self, project: &str, names: &[String]) -> Result<Option<Vec<String>>, GroupError> {
        if names.is_empty() || names == ["default"] {
            return Ok(None);
        }
        let groups = self.network_call(Method::GET, &format!("/security-groups?project_id={project}"), None).await?;
        let groups = groups["security_groups"].as_array().cloned().unwrap_or_default();
        names
            .iter()
            .map(|n| {
                groups
                    .iter()
                    .find(|g| g["name"] == json!(n) || g["id"] == json!(n))
                    .and_then(|g| g["id"].as_str().map(str::to_owned))
                    .ok_or_else(|| GroupError::NotFound(n.clone()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// Removes the server's ports: those it made are deleted, the user's are let go. Ports
    /// the network service has for the server but the server never recorded (a crash between
    /// the two) go too.
    pub async fn unplug(&self, server_id: &str, ports: &[ServerPort]) {
        self.clear_ports(server_id, ports, &[]).await
    }

    /// Removes every port a build of the server made or bound, recorded or not (a try cut
    /// short by a crash made ports it never recorded): those the user gave are let go, the
    /// others deleted.
    pub async fn clear_build_ports(&self, server_id: &str, server: Option<&crate::model::Server>) {
        let given: Vec<&str> = server
            .map(|s| s.requested_networks.iter().filter_map(|r| r.port_id.as_deref()).collect())
            .unwrap_or_default();
        self.clear_ports(server_id, server.map(|s| s.ports.as_slice()).unwrap_or_default(), &given).await
    }

    /// Lets go of `recorded` and of every other port the network service has with the server
    /// as its device: the user's (`given`) unbound, the rest deleted.
    async fn clear_ports(&self, server_id: &str, recorded: &[ServerPort], given: &[&str]) {
        let mut ids: Vec<(String, bool)> = recorded.iter().map(|p| (p.port_id.clone(), p.preexisting)).collect();
        match self.network_call(Method::GET, &format!("/ports?device_id={server_id}"), None).await {
            Ok(v) => {
                for p in v["ports"].as_array().into_iter().flatten() {
                    if let Some(id) = p["id"].as_str() {
                        if !ids.iter().any(|(x, _)| x == id) {
                            ids.push((id.to_string(), given.contains(&id)));
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(server = %server_id, error = %e.message(), "could not list the server's ports"),
        }
        self.let_go(server_id, ids).await
    }

    /// Removes these ports of the server only (made ones deleted, the user's let go).
    pub async fn release_ports(&self, server_id: &str, ports: &[ServerPort]) {
        self.let_go(server_id, ports.iter().map(|p| (p.port_id.clone(), p.preexisting)).collect()).await
    }

    async fn let_go(&self, server_id: &str, ids: Vec<(String, bool)>) {
        for (id, preexisting) in ids {
            let r = if preexisting {
                let body = json!({"port": {"device_id": "", "device_owner": "", "binding:host_id": ""}});
                self.network_call(Method::PUT, &format!("/ports/{id}"), Some(body)).await.map(|_| ())
            } else {
                match self.network_call(Method::DELETE, &format!("/ports/{id}"), None).await {
                    Err(e) if e.status() == Some(404) => Ok(()),
                    other => other.map(|_| ()),
                }
            };
            if let Err(e) = r {
                tracing::warn!(server = %server_id, port = %id, error = %e.message(), "could not remove a port of the server");
            }
        }
    }
}

/// The power state a server's instance keeps while its ports change.
fn power_of(vm_state: &str) -> haneul_contracts::agent::Power {
    use haneul_contracts::agent::Power;
    match vm_state {
        "paused" => Power::Paused,
        "stopped" => Power::Shutoff,
        "suspended" => Power::Suspended,
        _ => Power::Running,
    }
}

impl Compute {
    fn interface_lock(&self, server_id: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.interface_locks.lock().unwrap().entry(server_id.to_string()).or_default().clone()
    }

    /// Attaches a port (made on a network, or the user's) to the server: bound to its host,
    /// recorded on the server and, on a running guest, plugged in. The port as the network
    /// service has it then. Recorded as the instance action `attach_interface`.
    pub async fn attach_interface(
        &self,
        server_id: &str,
        asked: NetRequest,
        request_id: &str,
        user_id: &str,
        project_id: &str,
    ) -> crate::service::Result<Value> {
        let lock = self.interface_lock(server_id);
        let _held = lock.lock().await;
        let s = self
            .write(|t| {
                let s = t.edit(&t.m.servers, "server", server_id)?;
                crate::service::actions::record(t, request_id, &s, "attach_interface", user_id, project_id)?;
                Ok(s)
            })
            .await?;
        let host = s.host.clone().ok_or_else(|| Error::Conflict(format!("Instance {server_id} has no host")))?;
        const EVENT: &str = "compute_attach_interface";
        self.event_start(request_id, EVENT, Some(&host)).await;
        let fail = |source: AttachError| Error::AttachFailed { server_id: server_id.to_string(), source };
        let made = self.plug_ports(server_id, &s.project_id, &host, &[asked], &[], &s.ports).await;
        let port = match made {
            Ok(mut ports) if ports.len() == 1 => ports.remove(0),
            Ok(_) => return Err(fail(AttachError::NoPort)),
            Err(e) => {
                let m = chain(&e);
                self.event_finish(request_id, EVENT, Err(&m)).await;
                return Err(Error::BadRequest(m));
            }
        };
        let power = power_of(&s.vm_state);
        let added = port.clone();
        if let Err(e) = self.push(server_id, power, move |s| s.ports.push(added)).await {
            // The port goes again; the server as it was.
            let gone = port.port_id.clone();
            let _ = self.push(server_id, power, move |s| s.ports.retain(|p| p.port_id != gone)).await;
            self.release_ports(server_id, std::slice::from_ref(&port)).await;
            self.event_finish(request_id, EVENT, Err(&e.fault())).await;
            return Err(fail(e.into()));
        }
        self.event_finish(request_id, EVENT, Ok(())).await;
        let v = self.network_call(Method::GET, &format!("/ports/{}", port.port_id), None).await;
        Ok(v.map(|v| v["port"].clone()).unwrap_or_else(|_| {
            json!({"id": port.port_id, "network_id": port.network_id, "mac_address": port.mac, "status": "DOWN",
                   "fixed_ips": port.ips.iter().map(|ip| json!({"ip_address": ip})).collect::<Vec<_>>()})
        }))
    }

    /// Records the instance action `detach_interface` and takes the port out in the
    /// background: the guest lets go of its NIC, then the port is deleted (one the server
    /// made) or let go (the user's).
    pub async fn start_detach(
        self: &std::sync::Arc<Self>,
        server_id: &str,
        port_id: &str,
        request_id: &str,
        user_id: &str,
        project_id: &str,
    ) -> crate::service::Result<()> {
        self.write(|t| {
            let s = t.edit(&t.m.servers, "server", server_id)?;
            crate::service::actions::record(t, request_id, &s, "detach_interface", user_id, project_id)?;
            Ok(())
        })
        .await?;
        let (me, id, port, rid) = (self.clone(), server_id.to_string(), port_id.to_string(), request_id.to_string());
        tokio::spawn(async move { me.detach_interface(&id, &port, &rid).await });
        Ok(())
    }

    async fn detach_interface(&self, server_id: &str, port_id: &str, request_id: &str) {
        let lock = self.interface_lock(server_id);
        let _held = lock.lock().await;
        let Some(s) = self.model().servers.get(server_id).cloned() else { return };
        let Some(port) = s.ports.iter().find(|p| p.port_id == port_id).cloned() else { return };
        const EVENT: &str = "compute_detach_interface";
        self.event_start(request_id, EVENT, s.host.as_deref()).await;
        let power = power_of(&s.vm_state);
        let gone = port_id.to_string();
        if let Err(m) =
            self.push(server_id, power, move |s| s.ports.retain(|p| p.port_id != gone)).await.map_err(|e| e.fault())
        {
            // Still plugged in: the server keeps the port.
            tracing::warn!(server = %server_id, port = %port_id, error = %m, "could not detach an interface");
            let back = port.clone();
            let _ = self.set_state(server_id, move |s| s.ports.push(back)).await;
            self.event_finish(request_id, EVENT, Err(&m)).await;
            return;
        }
        self.release_ports(server_id, std::slice::from_ref(&port)).await;
        self.event_finish(request_id, EVENT, Ok(())).await;
    }
}

/// A create's `networks` as given.
pub enum NetworksArg {
    None,
    /// `auto`, or (before 2.37) no `networks` at all (`required` false: none is fine).
    Auto {
        required: bool,
    },
    List(Vec<NetRequest>),
}

/// Parses a create's `networks` (Nova's 400s for malformed entries: `Error::BadRequest`).
pub fn parse_networks(v: Option<&Value>, mv_at_least_37: bool) -> crate::service::Result<NetworksArg> {
    match v {
        None if mv_at_least_37 => Err(Error::BadRequest(
            "Invalid input for field/attribute server. Value: 'networks' is a required property".into(),
        )),
        None => Ok(NetworksArg::Auto { required: false }),
        Some(Value::String(s)) if s == "none" => Ok(NetworksArg::None),
        Some(Value::String(s)) if s == "auto" => Ok(NetworksArg::Auto { required: true }),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for item in list {
                let Value::Object(o) = item else {
                    return Err(Error::BadRequest(format!(
                        "Invalid input for field/attribute networks. Value: {item}."
                    )));
                };
                for k in o.keys() {
                    if !["uuid", "port", "fixed_ip", "tag"].contains(&k.as_str()) {
                        return Err(Error::BadRequest(format!("Invalid input for field/attribute networks. Additional properties are not allowed ('{k}' was unexpected)")));
                    }
                }
                let s = |k: &str| -> crate::service::Result<Option<String>> {
                    match o.get(k) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(x)) => Ok(Some(x.clone())),
                        Some(other) => {
                            Err(Error::BadRequest(format!("Invalid input for field/attribute {k}. Value: {other}.")))
                        }
                    }
                };
                let r = NetRequest {
                    network_id: s("uuid")?,
                    port_id: s("port")?,
                    fixed_ip: s("fixed_ip")?,
                    tag: s("tag")?,
                };
                if r.network_id.is_none() && r.port_id.is_none() {
                    return Err(Error::BadRequest("Bad networks format: network uuid is not in proper format".into()));
                }
                if let Some(id) = &r.network_id {
                    if uuid::Uuid::parse_str(id).is_err() {
                        return Err(Error::BadRequest(format!(
                            "Bad networks format: network uuid is not in proper format ({id})"
                        )));
                    }
                }
                out.push(r);
            }
            Ok(NetworksArg::List(out))
        }
        Some(other) => Err(Error::BadRequest(format!("Invalid input for field/attribute networks. Value: {other}."))),
    }
}

/// The server view's `addresses`: network name → its addresses (with the `OS-EXT-IPS` type
/// and MAC in the extended views).
pub fn addresses(ports: &[ServerPort], extended: bool) -> Value {
    let mut out = serde_json::Map::new();
    for p in ports {
        let entry = out.entry(p.network_name.clone()).or_insert_with(|| json!([]));
        let fixed = p.ips.iter().map(|ip| (ip, "fixed"));
        for (ip, kind) in fixed.chain(p.floating_ips.iter().map(|ip| (ip, "floating"))) {
            let version = if ip.contains(':') { 6 } else { 4 };
            if let Some(a) = entry.as_array_mut() {
                let mut one = json!({"version": version, "addr": ip});
                if extended {
                    one["OS-EXT-IPS:type"] = json!(kind);
                    one["OS-EXT-IPS-MAC:mac_addr"] = json!(p.mac);
                }
                a.push(one);
            }
        }
    }
    Value::Object(out)
}

/// The config drive's and metadata's `network_data.json`: a link per port and DHCP on it
/// (the addresses come from the network's DHCP server, as on a Neutron network with DHCP).
pub fn network_data(ports: &[ServerPort]) -> Value {
    let links: Vec<Value> = ports
        .iter()
        .map(|p| json!({"id": format!("tap{}", &p.port_id[..p.port_id.len().min(11)]), "vif_id": p.port_id, "type": "bridge", "mtu": p.mtu, "ethernet_mac_address": p.mac}))
        .collect();
    let networks: Vec<Value> = ports
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.ips.iter().enumerate().map(move |(j, ip)| {
                let kind = if ip.contains(':') { "ipv6_dhcp" } else { "ipv4_dhcp" };
                json!({"id": format!("network{}", i * 8 + j), "type": kind, "link": format!("tap{}", &p.port_id[..p.port_id.len().min(11)]), "network_id": p.network_id})
            })
        })
        .collect();
    json!({"links": links, "networks": networks, "services": []})
}
