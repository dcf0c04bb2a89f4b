//! The extension list (`/v2.0/extensions`): exactly what this service implements, as
//! neutron-lib names it (clients such as tempest and the SDK decide what to call from it),
//! the agents list (the host agents, as the Neutron agent types they stand for) and the
//! empty service provider list.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::routes::{rule, Access, Routes};
use serde_json::{json, Value};

use super::{list_response, ApiResult, Ctx, ListQuery};
use crate::service::Error;

/// (alias, name, description, updated)
pub const EXTENSIONS: &[(&str, &str, &str, &str)] = &[
    ("availability_zone", "Availability Zone", "The availability zone extension.", "2015-01-01T10:00:00-00:00"),
    ("agent", "agent", "The agent management extension.", "2013-02-03T10:00:00-00:00"),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs", "2013-07-23T10:00:00-00:00"),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application", "2014-02-03T10:00:00-00:00"),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway", "2013-03-28T10:00:00-00:00"),
    ("expose-port-forwarding-in-fip", "Expose port forwardings in a floating IP", "Expose port forwardings in a floating IP", "2019-04-30T10:00:00-00:00"),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource.", "2013-01-14T10:00:00-00:00"),
    ("extra_dhcp_opt", "Neutron Extra DHCP options", "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)", "2013-03-17T12:00:00-00:00"),
    ("default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a subnetpool as the default.", "2016-02-18T18:00:00-00:00"),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router", "2013-02-01T10:00:00-00:00"),
    ("floating-ip-port-forwarding", "Floating IP Port Forwarding", "Provides port forwarding to floating IP support", "2019-04-09T10:00:00-00:00"),
    ("floating-ip-port-forwarding-description", "Floating IP port forwarding description", "Add description field to port forwarding rules", "2019-11-01T10:00:00-00:00"),
    ("floating-ip-port-forwarding-port-ranges", "Floating IP Port Forwarding support port ranges", "Add support to port ranges", "2020-07-01T10:00:00-00:00"),
    ("fip-port-details", "Floating IP Port Details Extension", "Add port_details attribute to Floating IP resource", "2018-04-09T10:00:00-00:00"),
    ("ip-substring-filtering", "IP address substring filtering", "Provides IP address substring filtering when listing ports", "2017-11-28T09:00:00-00:00"),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource.", "2015-03-25T10:00:00-00:00"),
    ("net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource.", "2017-07-12T00:00:00-00:00"),
    ("port-security", "Port Security", "Provides port security", "2012-07-23T10:00:00-00:00"),
    ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled.", "2016-09-09T09:09:09-09:09"),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks", "2012-09-07T10:00:00-00:00"),
    ("quotas", "Quota management support", "Expose functions for quotas management per project", "2012-07-29T10:00:00-00:00"),
    ("quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project", "2017-02-10T10:00:00-00:00"),
    ("network_availability_zone", "Network Availability Zone", "Availability zone support for network.", "2015-01-01T10:00:00-00:00"),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled.", "2016-06-12T00:00:00-00:00"),
    ("rbac-policies", "RBAC Policies", "Allows creation and modification of policies that control tenant access to resources.", "2015-06-17T12:15:12-00:00"),
    ("router_availability_zone", "Router Availability Zone", "Availability zone support for router.", "2015-01-01T10:00:00-00:00"),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.", "2012-07-20T10:00:00-00:00"),
    ("security-group", "security-group", "The security groups extension.", "2012-10-05T10:00:00-00:00"),
    ("security-groups-normalized-cidr", "Normalized CIDR field for security group rules", "Add new field with normalized remote_ip_prefix cidr in SG rule", "2020-07-28T10:00:00-00:00"),
    ("service-type", "Neutron Service Type Management", "API for retrieving service providers for Neutron advanced services", "2013-01-20T00:00:00-00:00"),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled.", "2016-06-12T00:00:00-00:00"),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes", "2016-02-10T10:00:00-00:00"),
    ("standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources.", "2016-04-11T10:00:00-00:00"),
    ("standard-attr-tag", "Tag support for resources with standard attribute: port, subnet, subnetpool, network, router, floatingip, security_group", "Enables to set tag on resources with standard attribute.", "2017-01-01T00:00:00-00:00"),
    ("standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.", "2016-09-12T10:00:00-00:00"),
    ("stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not", "2019-11-26T09:00:00-00:00"),
    ("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool", "2015-03-30T10:00:00-00:00"),
    ("subnet-external-network", "Subnet External Network", "Informs if the subnet is associated to an external network", "2020-02-07T10:00:00-00:00"),
    ("subnet-service-types", "Subnet service types", "Provides ability to set the subnet service_types field", "2016-03-15T18:00:00-00:00"),
    ("tag", "Tag support", "Enables to set tag on resources.", "2016-01-01T00:00:00-00:00"),
];

pub fn routes() -> Routes<Ctx> {
    /// Neutron asks no rule for its extension list: clients read it to learn what is served.
    const DISCOVERY: Access = Access::Token("clients read the extension list to learn what is served");
    Routes::new()
        .get("/extensions", DISCOVERY, list)
        .get("/extensions/{alias}", DISCOVERY, show)
        .get("/agents", Access::Filter("get_agent"), agents)
        .get("/agents/{id}", rule("get_agent"), show_agent)
        .put("/agents/{id}", rule("update_agent"), update_agent)
        .get("/service-providers", rule("get_service_provider"), service_providers)
        .get("/availability_zones", rule("get_availability_zone"), availability_zones)
}

fn render(e: &(&str, &str, &str, &str)) -> Value {
    json!({"alias": e.0, "name": e.1, "description": e.2, "updated": e.3, "links": []})
}

async fn list() -> Response {
    Json(json!({"extensions": EXTENSIONS.iter().map(render).collect::<Vec<_>>()})).into_response()
}

async fn show(Path(alias): Path<String>) -> ApiResult {
    let e = EXTENSIONS
        .iter()
        .find(|e| e.0 == alias)
        .ok_or_else(|| Error::NotFound("HTTPNotFound", format!("Extension with alias {alias} does not exist")))?;
    Ok(Json(json!({"extension": render(e)})).into_response())
}

/// Neutron's agent types a host's haneul agent stands for: the Linux bridge agent on every
/// host, DHCP, L3 and metadata on the network node.
const AGENT_TYPES: &[(&str, &str, bool)] = &[
    ("Linux bridge agent", "neutron-linuxbridge-agent", false),
    ("DHCP agent", "neutron-dhcp-agent", true),
    ("L3 agent", "neutron-l3-agent", true),
    ("Metadata agent", "neutron-metadata-agent", true),
];

/// How long after its last ask an agent counts as alive (Neutron's `agent_down_time`).
const AGENT_DOWN_SECONDS: i64 = 75;

/// `GET /v2.0/agents` (admin): one entry per host and agent type, alive while the host's
/// agent keeps asking for its data plane.
async fn agents(State(n): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    let q = super::ListQuery::parse(&q)?;
    // As Neutron: the list holds the agents `get_agent` lets the caller see (admins: all).
    let may = super::enforce(&n, &ctx, "get_agent", &json!({"project_id": ctx.project_id()})).is_ok();
    let items = if may { agent_list(&n) } else { Vec::new() };
    super::list_response(&n, items, &q, "agents", &[])
}

fn find_agent(n: &Ctx, ctx: &haneul_core::auth::AuthContext, id: &str) -> Result<Value, Error> {
    let missing = || Error::NotFound("AgentNotFound", format!("Agent {id} could not be found."));
    if !super::is_admin(ctx) {
        return Err(missing());
    }
    agent_list(n).into_iter().find(|a| a["id"] == id).ok_or_else(missing)
}

async fn show_agent(State(n): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    Ok(Json(json!({"agent": find_agent(&n, &ctx, &id)?})).into_response())
}

/// `PUT /v2.0/agents/{id}`: `admin_state_up` and `description` (kept in memory: the agent's
/// work does not depend on them here).
async fn update_agent(
    State(n): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    find_agent(&n, &ctx, &id)?;
    let a = super::one_member(&body, "agent", "agents")?;
    a.only(&["admin_state_up", "description"])?;
    let admin_state_up = a.bool("admin_state_up")?;
    let description = a.str("description", 255)?;
    n.set_agent_override(&id, admin_state_up, description);
    Ok(Json(json!({"agent": find_agent(&n, &ctx, &id)?})).into_response())
}

fn agent_list(n: &Ctx) -> Vec<Value> {
    use sha2::Digest;
    let now = chrono::Utc::now();
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let mut items = Vec::new();
    for (host, seen) in n.agents() {
        for (kind, binary, node_only) in AGENT_TYPES {
            if *node_only && !seen.network_node {
                continue;
            }
            let digest = sha2::Sha256::digest(format!("{host}/{binary}").as_bytes());
            let id =
                uuid::Builder::from_random_bytes(digest[..16].try_into().expect("16 bytes")).into_uuid().to_string();
            let (admin_state_up, description) = n.agent_override(&id);
            items.push(json!({
                "id": id,
                "agent_type": kind,
                "binary": binary,
                "host": host,
                "topic": "N/A",
                "admin_state_up": admin_state_up,
                "alive": (now - seen.last).num_seconds() < AGENT_DOWN_SECONDS,
                "availability_zone": if *node_only && *binary != "neutron-metadata-agent" { json!("nova") } else { json!(null) },
                "configurations": if *binary == "neutron-linuxbridge-agent" {
                    json!({"tunneling_ip": seen.tunnel_ip, "tunnel_types": if seen.tunnel_ip.is_some() { json!(["vxlan"]) } else { json!([]) }})
                } else {
                    json!({})
                },
                "description": description,
                "created_at": stamp(seen.started),
                "started_at": stamp(seen.started),
                "heartbeat_timestamp": stamp(seen.last),
                "resources_synced": null,
                "resource_versions": {},
            }));
        }
    }
    items
}

/// The service types served and their drivers, as Neutron lists its `service_providers`:
/// routers (`L3_ROUTER_NAT`), one kind of them here (a router on the network node, no HA or
/// DVR), so its driver is the default.
const SERVICE_PROVIDERS: &[(&str, &str, bool)] = &[("L3_ROUTER_NAT", "single_node", true)];

async fn service_providers(State(c): State<Ctx>, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let items =
        SERVICE_PROVIDERS.iter().map(|(t, name, default)| json!({"service_type": t, "name": name, "default": default}));
    list_response(&c, items.collect(), &q, "service_providers", &[])
}

/// The zones networks and routers are placed in: `nova`, the zone of every host's agent.
pub const ZONES: &[&str] = &["nova"];

/// `GET /v2.0/availability_zones`: each zone once per resource kind, as Neutron lists them.
async fn availability_zones(
    State(c): State<Ctx>,
    Auth(_ctx): Auth,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let q = super::ListQuery::parse(&q)?;
    let items = ZONES
        .iter()
        .flat_map(|z| ["network", "router"].map(|r| json!({"name": z, "resource": r, "state": "available"})))
        .collect();
    super::list_response(&c, items, &q, "availability_zones", &[])
}

/// Neutron's 404 for an availability zone hint that names no zone.
pub fn check_zone_hints(hints: &[String]) -> Result<(), Error> {
    match hints.iter().find(|h| !ZONES.contains(&h.as_str())) {
        Some(h) => {
            Err(Error::NotFound("AvailabilityZoneNotFound", format!("AvailabilityZone {h} could not be found.")))
        }
        None => Ok(()),
    }
}
