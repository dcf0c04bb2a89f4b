//! `POST /servers`: the request parsed and checked (networks, zone, hints, image, flavor) and
//! the build started.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use base64::Engine;
use chrono::Utc;
use haneul_core::auth::{Auth, AuthContext, RawToken};
use haneul_core::error::ApiError;
use haneul_core::http::RequestId;
use haneul_core::service::chain;
use serde_json::{json, Map, Value};

use super::common::*;
use crate::api::{body_member, is_admin, links, ApiResult, Ctx, Mv};
use crate::model::{FlavorAccess, FlavorCopy, Server};
use crate::service::network::{NetError, NetworksError};
use crate::service::Compute;

/// The request's scheduler hints (`os:scheduler_hints`), and the id of the server group they
/// name (not yet checked).
fn scheduler_hints(body: &[u8]) -> ApiResult<(Map<String, Value>, Option<String>)> {
    let v: Value = haneul_core::http::parse_json(body)?;
    let hints = match v.get("os:scheduler_hints").or_else(|| v.get("OS-SCH-HNT:scheduler_hints")) {
        None => return Ok((Map::new(), None)),
        Some(Value::Object(h)) => h.clone(),
        Some(h) => {
            return Err(bad(format!(
                "Invalid input for field/attribute os:scheduler_hints. Value: {h}. {h} is not of type 'object'"
            )))
        }
    };
    let Some(group) = hints.get("group") else { return Ok((hints, None)) };
    let id = group.as_str().ok_or_else(|| bad(format!("Invalid input for field/attribute group. Value: {group}.")))?;
    let id = id.to_string();
    Ok((hints, Some(id)))
}

/// The server group a request names, if the caller may use it.
fn usable_group(c: &Compute, ctx: &AuthContext, id: Option<String>) -> ApiResult<Option<String>> {
    let Some(id) = id else { return Ok(None) };
    match c.model().server_groups.get(&id) {
        Some(g) if is_admin(ctx) || ctx.project_id() == Some(g.project_id.as_str()) => Ok(Some(id)),
        _ => Err(bad(format!("Instance group {id} could not be found."))),
    }
}

/// `min_count` / `max_count`: a whole number of at least 1 (or a string of digits).
pub(super) fn count_arg(o: &Map<String, Value>, field: &str) -> ApiResult<Option<u32>> {
    let n = match o.get(field) {
        None => return Ok(None),
        Some(Value::Number(n)) if n.is_u64() => n.as_u64(),
        Some(Value::String(t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t.parse::<u64>().ok(),
        Some(v) => {
            return Err(bad(format!(
                "Invalid input for field/attribute {field}. Value: {v}. {v} is not of type 'integer', 'string'"
            )))
        }
    };
    match n {
        Some(0) => {
            Err(bad(format!("Invalid input for field/attribute {field}. Value: 0. 0 is less than the minimum of 1")))
        }
        Some(n) if n <= 1000 => Ok(Some(n as u32)),
        _ => Err(bad(format!("Invalid input for field/attribute {field}. Value: {}.", o[field]))),
    }
}

/// A server's `availability_zone`: `zone`, or (admins) `zone:host`, `zone:host:node`,
/// `zone::node` to force a host. A zone must be one some enabled service is in.
fn zone_arg(v: Option<&Value>) -> ApiResult<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 255 && s.trim() == s => Ok(Some(s.clone())),
        Some(v) => Err(bad(format!("Invalid input for field/attribute availability_zone. Value: {v}."))),
    }
}

pub(super) fn requested_zone(
    c: &Compute,
    ctx: &AuthContext,
    az: Option<&str>,
) -> ApiResult<(Option<String>, Option<String>)> {
    let Some(az) = az else { return Ok((None, None)) };
    let parts: Vec<&str> = az.split(':').collect();
    if parts.len() > 3 {
        return Err(bad("Invalid input received: Unable to parse availability_zone"));
    }
    let zone = Some(parts[0].to_string()).filter(|z| !z.is_empty());
    let host = parts.get(1).filter(|h| !h.is_empty()).map(|h| h.to_string());
    let node = parts.get(2).filter(|n| !n.is_empty()).map(|n| n.to_string());
    let forced = host.or(node);
    if forced.is_some() {
        super::super::enforce(
            c,
            ctx,
            "os_compute_api:servers:create:forced_host",
            &json!({"project_id": ctx.project_id()}),
        )?;
        return Ok((zone, forced));
    }
    if let Some(z) = &zone {
        let m = c.model();
        let known = m.services.values().filter(|s| !s.disabled).any(|s| &m.service_zone(s) == z);
        if !known {
            return Err(bad("The requested availability zone is not available"));
        }
    }
    Ok((zone, None))
}

/// `POST /servers`'s body, parsed once: every field's shape checked with Nova's messages.
/// What needs the cloud (the flavor, key pair, image, networks, zone, groups) is checked on
/// these fields afterwards.
pub(super) struct CreateServer {
    name: String,
    flavor_ref: String,
    image_ref: String,
    min_count: u32,
    max_count: u32,
    return_reservation_id: bool,
    hostname: Option<String>,
    tags: Vec<String>,
    networks: crate::service::network::NetworksArg,
    security_groups: Vec<String>,
    auto_disk_config: Option<bool>,
    admin_pass: Option<String>,
    key_name: Option<String>,
    user_data: Option<String>,
    metadata: std::collections::BTreeMap<String, String>,
    availability_zone: Option<String>,
    description: Option<String>,
    access_ipv4: String,
    access_ipv6: String,
    hints: Map<String, Value>,
    group: Option<String>,
}

impl CreateServer {
    pub(super) fn parse(body: &[u8], mv: Mv) -> ApiResult<CreateServer> {
        let o: Map<String, Value> = body_member(body, "server")?;
        let (hints, group) = scheduler_hints(body)?;
        let access_ipv4 = access_ip(&o, "accessIPv4", false)?.unwrap_or_default();
        let access_ipv6 = access_ip(&o, "accessIPv6", true)?.unwrap_or_default();
        let (min_count, max_count) = match (count_arg(&o, "min_count")?, count_arg(&o, "max_count")?) {
            (None, None) => (1, 1),
            (Some(n), None) => (n, n),
            (None, Some(x)) => (1, x),
            (Some(n), Some(x)) if n > x => return Err(bad("min_count must be <= max_count")),
            (Some(n), Some(x)) => (n, x),
        };
        let return_reservation_id = match o.get("return_reservation_id") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(t))
                if matches!(t.to_ascii_lowercase().as_str(), "true" | "false" | "1" | "0" | "yes" | "no") =>
            {
                matches!(t.to_ascii_lowercase().as_str(), "true" | "1" | "yes")
            }
            Some(v) => {
                return Err(bad(format!("Invalid input for field/attribute return_reservation_id. Value: {v}.")))
            }
        };
        let hostname = match o.get("hostname") {
            Some(h) if mv.at_least(90) => Some(hostname_arg(h)?),
            Some(_) => {
                return Err(bad(
                    "Invalid input for field/attribute server. Additional properties are not allowed ('hostname' was unexpected)",
                ))
            }
            None => None,
        };
        if hostname.is_some() && max_count > 1 {
            return Err(bad("Cannot use hostname with multiple instances: only max_count=1 is allowed."));
        }
        let tags = match o.get("tags") {
            Some(t) if mv.at_least(52) => super::super::server_meta::tag_list(t)?,
            _ => Vec::new(),
        };
        let name = match o.get("name") {
            Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => n.clone(),
            Some(v) => return Err(bad(format!("Invalid input for field/attribute name. Value: {v}."))),
            None => return Err(bad("Invalid input for field/attribute server. Value: 'name' is a required property")),
        };
        let flavor_ref = match o.get("flavorRef") {
            Some(Value::String(f)) if !f.is_empty() => last_segment(f).to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(bad("Invalid input for field/attribute server. Value: 'flavorRef' is a required property"))
            }
        };
        let image_ref = match o.get("imageRef") {
            Some(Value::String(i)) if !i.is_empty() => last_segment(i).to_string(),
            _ => return Err(bad("Block device mapping is not supported yet: imageRef is required.")),
        };
        let networks = crate::service::network::parse_networks(o.get("networks"), mv.at_least(37))?;
        let security_groups: Vec<String> = match o.get("security_groups") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => {
                list.iter()
                    .map(|g| {
                        g.get("name").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
                            bad(format!("Invalid input for field/attribute security_groups. Value: {g}."))
                        })
                    })
                    .collect::<ApiResult<Vec<_>>>()?
            }
            Some(v) => return Err(bad(format!("Invalid input for field/attribute security_groups. Value: {v}."))),
        };
        let auto_disk_config = disk_config_arg(&o)?;
        let admin_pass = admin_pass_arg(&o)?;
        let key_name = match o.get("key_name") {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(v) => return Err(bad(format!("Invalid input for field/attribute key_name. Value: {v}."))),
        };
        let user_data = match o.get("user_data") {
            None | Some(Value::Null) => None,
            Some(Value::String(u)) => {
                base64::engine::general_purpose::STANDARD
                    .decode(u)
                    .map_err(|_| bad("User data needs to be valid base 64."))?;
                if u.len() > 65535 {
                    return Err(bad(
                        "User data too large. User data must be no larger than 65535 bytes once base64 encoded.",
                    ));
                }
                Some(u.clone())
            }
            Some(v) => return Err(bad(format!("Invalid input for field/attribute user_data. Value: {v}."))),
        };
        let metadata = o.get("metadata").map(metadata_arg).transpose()?.unwrap_or_default();
        let availability_zone = zone_arg(o.get("availability_zone"))?;
        let description = o.get("description").and_then(|d| d.as_str()).map(str::to_owned);
        Ok(CreateServer {
            name,
            flavor_ref,
            image_ref,
            min_count,
            max_count,
            return_reservation_id,
            hostname,
            tags,
            networks,
            security_groups,
            auto_disk_config,
            admin_pass,
            key_name,
            user_data,
            metadata,
            availability_zone,
            description,
            access_ipv4,
            access_ipv6,
            hints,
            group,
        })
    }
}

pub(super) async fn create(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Extension(rid): Extension<RequestId>,
    body: Bytes,
) -> ApiResult {
    let Some(project) = ctx.project_id().map(str::to_owned) else {
        return Err(ApiError::forbidden("Servers are created with a project-scoped token."));
    };
    let r = CreateServer::parse(&body, mv)?;
    let group = usable_group(&c, &ctx, r.group)?;
    let (min_count, max_count) = (r.min_count, r.max_count);
    // Nova checks the groups before anything is made ("default" is always there).
    if r.security_groups.iter().any(|g| g != "default") {
        c.group_ids(&project, &r.security_groups).await.map_err(|e| bad(chain(&e)))?;
    }
    let admin_pass = r.admin_pass.unwrap_or_else(new_admin_pass);
    let requested_networks = c.check_networks(&project, r.networks, is_admin(&ctx)).await.map_err(|e| {
        let message = chain(&e);
        match e {
            NetworksError::Ambiguous | NetworksError::PortInUse(_) => ApiError::conflict(message),
            NetworksError::Network(NetError::Unavailable(_)) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message),
            _ => bad(message),
        }
    })?;
    if requested_networks.iter().filter(|r| r.port_id.is_some()).count() > 0 && max_count > 1 {
        return Err(bad("Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports."));
    }
    let (requested_zone, forced_host) = requested_zone(&c, &ctx, r.availability_zone.as_deref())?;
    let m = c.model();
    let flavor_ref = r.flavor_ref;
    let flavor = m
        .flavors
        .get(&flavor_ref)
        .filter(|f| f.is_public || is_admin(&ctx) || m.flavor_access.contains_key(&FlavorAccess::key(&f.id, &project)))
        .ok_or_else(|| bad(format!("Flavor {flavor_ref} could not be found.")))?;
    let (key_name, key_data) = match r.key_name {
        None => (None, None),
        Some(k) => {
            let pair = m
                .keypairs
                .get(&crate::model::Keypair::key(&ctx.user.id, &k))
                .ok_or_else(|| bad("Invalid key_name provided."))?;
            (Some(k), Some(pair.public_key.clone()))
        }
    };
    let image_ref = r.image_ref;
    let (image, disk_format) = bootable_image(&c, &token.0, &image_ref, flavor.disk, flavor.ram).await?;
    let image_properties = image_properties(&image);
    let auto_disk_config = image_disk_config(&image_ref, &image_properties, r.auto_disk_config)?;
    let (name, hostname, tags, metadata, user_data) = (r.name, r.hostname, r.tags, r.metadata, r.user_data);
    let (access_ipv4, access_ipv6, hints, security_groups) = (r.access_ipv4, r.access_ipv6, r.hints, r.security_groups);
    let (description, return_reservation_id) = (r.description, r.return_reservation_id);
    let now = Utc::now();
    let reservation_id: String = format!("r-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let template = Server {
        id: String::new(),
        hostname: hostname.unwrap_or_else(|| crate::service::servers::hostname(&name)),
        name,
        project_id: project,
        user_id: ctx.user.id.clone(),
        flavor: FlavorCopy::of(&flavor),
        image_id: image_ref,
        key_name,
        key_data,
        user_data,
        metadata,
        description,
        vm_state: "building".into(),
        task_state: Some("scheduling".into()),
        power_state: 0,
        host: None,
        availability_zone: requested_zone.clone().unwrap_or_default(),
        requested_zone,
        forced_host,
        created_at: now,
        updated_at: now,
        launched_at: None,
        fault: None,
        group: group.clone(),
        tags,
        locked: false,
        locked_reason: None,
        locked_by: None,
        generation: 0,
        image_format: disk_format,
        reboots: 0,
        hard_reboots: 0,
        rebuilds: 0,
        access_ipv4,
        access_ipv6,
        scheduler_hints: hints,
        image_properties,
        reservation_id: reservation_id.clone(),
        launch_index: 0,
        resize: None,
        reverts: 0,
        rescue_image: None,
        requested_networks,
        security_groups: security_groups.clone(),
        ports: Vec::new(),
        auto_disk_config,
        password: String::new(),
    };
    let kp = c.settings.key_pairs_quota as i64;
    let saved = c
        .write(|t| {
            let limits = crate::service::quotas::limits(&t.m, kp, &template.project_id, Some(&template.user_id));
            let meta_limit = limits["metadata_items"];
            if meta_limit >= 0 && template.metadata.len() as i64 > meta_limit {
                return Err(crate::service::Error::Forbidden(format!(
                    "Maximum number of metadata items exceeds {meta_limit}"
                )));
            }
            // As many as the quota allows, from max_count down to min_count (Nova's rule).
            let f = &template.flavor;
            let mut count = max_count;
            loop {
                let n = count as i64;
                let wanted = [("instances", n), ("cores", n * f.vcpus), ("ram", n * f.ram)];
                match crate::service::quotas::check(t, kp, &template.project_id, &template.user_id, &wanted) {
                    Ok(()) => break,
                    Err(e) if count <= min_count => return Err(e),
                    Err(_) => count -= 1,
                }
            }
            let mut saved = Vec::new();
            for i in 0..count {
                let mut server = template.clone();
                server.id = uuid::Uuid::new_v4().to_string();
                server.launch_index = i;
                if count > 1 {
                    server.name = format!("{}-{}", template.name, i + 1);
                    server.hostname = crate::service::servers::hostname(&server.name);
                }
                if let Some(g) = &server.group {
                    let mut g = t.edit(&t.m.server_groups, "server group", g)?;
                    let limit = limits["server_group_members"];
                    if limit >= 0 && g.members.len() as i64 >= limit {
                        return Err(crate::service::Error::Forbidden(
                            "Quota exceeded, too many servers in group".into(),
                        ));
                    }
                    g.members.push(server.id.clone());
                    t.put(g)?;
                }
                let s = t.put(server)?;
                t.put(crate::service::servers::build_workflow(&s.id, &rid.0, &image))?;
                crate::service::actions::record(t, &rid.0, &s, "create", &ctx.user.id, &s.project_id)?;
                saved.push(s);
            }
            Ok(saved)
        })
        .await?;
    for s in &saved {
        c.start_build(&s.id);
    }
    if return_reservation_id {
        return Ok((StatusCode::ACCEPTED, Json(json!({"reservation_id": reservation_id}))).into_response());
    }
    let first = &saved[0];
    let body = json!({"server": {
        "id": first.id,
        "links": links(&c, &format!("servers/{}", first.id)),
        "OS-DCF:diskConfig": disk_config(first.auto_disk_config),
        "security_groups": if security_groups.is_empty() { json!([{"name": "default"}]) } else { json!(security_groups.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()) },
        "adminPass": admin_pass,
    }});
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = format!("{}/v2.1/servers/{}", c.settings.public_url, first.id).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}
