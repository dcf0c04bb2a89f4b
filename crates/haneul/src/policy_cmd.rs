//! `haneul policy routes`: every route of every service with the rule it asks and what the
//! guard decides for each persona, from the routers' own tables and the effective policy
//! (the defaults plus the policy file the configuration names). The RBAC matrix test walks
//! this list against a running cloud.

use std::sync::Arc;

use haneul_core::auth::{AuthContext, NamedRef, Scope};
use haneul_core::config::Config;
use haneul_core::policy::{Policy, PolicyFile};
use haneul_core::routes::{Access, Decision, Guard, RouteSpec};
use serde_json::{json, Value};

/// The callers the matrix asks about: (name, scope, roles as Keystone expands them).
const PERSONAS: &[(&str, &str, &[&str])] = &[
    ("system_admin", "system", &["admin", "manager", "member", "reader"]),
    ("project_admin", "project", &["admin", "manager", "member", "reader"]),
    ("project_manager", "project", &["manager", "member", "reader"]),
    ("project_member", "project", &["member", "reader"]),
    ("project_reader", "project", &["reader"]),
    ("other_project_member", "other", &["member", "reader"]),
];

fn persona(scope: &str, roles: &[&str]) -> AuthContext {
    let r = |id: &str| NamedRef { id: id.into(), name: id.into() };
    let scope = match scope {
        "system" => Scope::System,
        "other" => Scope::Project { project: r("project-b"), domain: r("default") },
        _ => Scope::Project { project: r("project-a"), domain: r("default") },
    };
    AuthContext::synthetic("persona", scope, roles)
}

/// Whether a service's handler rules can be told from the caller alone. Keystone's rules
/// name the resource's own attributes (`%(target.user.id)s`, the token's subject, ...): for
/// identity the matrix expects what its handlers decide ("handler": neither 401 nor a server
/// error), and its deny side is the identity RBAC tests' and tempest's.
#[derive(Clone, Copy, PartialEq)]
enum HandlerRules {
    OwnScope,
    ByResource,
}

/// What each persona gets: the guard's decision, and for a rule the handler asks on the
/// resource, that rule on the persona's own project's resources.
fn expect(guard: &Guard, access: &Access, action: Option<&str>, handler: HandlerRules) -> Value {
    let mut out = serde_json::Map::new();
    let by_resource = matches!(access, Access::Target(_) | Access::TargetAny(_)) && handler == HandlerRules::ByResource;
    let word = |d: Decision, ctx: Option<&AuthContext>| match (d, access, ctx) {
        (Decision::Allow, _, Some(_)) if by_resource => "handler",
        (Decision::Allow, Access::Target(rule), Some(ctx)) if !guard.allows(ctx, rule) => "deny",
        (Decision::Allow, Access::TargetAny(rules), Some(ctx)) if !rules.iter().any(|r| guard.allows(ctx, r)) => "deny",
        (Decision::Allow, ..) => "allow",
        (Decision::Unauthenticated, ..) => "unauthenticated",
        (Decision::Deny(_), ..) => "deny",
        (Decision::NoSuchAction, ..) => "no_such_action",
    };
    out.insert("anonymous".into(), json!(word(guard.decide(None, access, action), None)));
    for (name, scope, roles) in PERSONAS {
        let ctx = persona(scope, roles);
        out.insert((*name).into(), json!(word(guard.decide(Some(&ctx), access, action), Some(&ctx))));
    }
    Value::Object(out)
}

fn service(name: &str, port: u16, table: Vec<RouteSpec>, guard: Guard, handler: HandlerRules) -> Value {
    let mut rows = Vec::new();
    for route in &table {
        let base = route.to_json();
        match &route.access {
            Access::Actions(actions) => {
                for (key, rule) in actions.iter() {
                    let mut row = base.clone();
                    row["action"] = json!(key);
                    row["rule"] = json!(rule);
                    row["expect"] = expect(&guard, &route.access, Some(key), handler);
                    rows.push(row);
                }
            }
            access => {
                let mut row = base;
                row["rule"] = match access {
                    Access::Rule(r) | Access::Target(r) => json!(r),
                    Access::TargetAny(rs) => json!(rs.join(" | ")),
                    Access::Filter(r) => json!(r),
                    _ => Value::Null,
                };
                row["expect"] = expect(&guard, access, None, handler);
                rows.push(row);
            }
        }
    }
    json!({"service": name, "port": port, "routes": rows})
}

fn effective(path: std::path::PathBuf, defaults: &[(&str, &str)]) -> anyhow::Result<impl Fn() -> Arc<Policy>> {
    let file = Arc::new(PolicyFile::new(path, defaults)?);
    Ok(move || file.current())
}

pub fn routes(cfg: &Config) -> anyhow::Result<()> {
    let services = vec![
        service(
            "identity",
            cfg.identity.port,
            haneul_identity::api::route_table(),
            haneul_identity::api::guard(effective(cfg.policy_file(), haneul_identity::policy_defaults::DEFAULT_RULES)?),
            HandlerRules::ByResource,
        ),
        service(
            "compute",
            cfg.compute.port,
            haneul_compute::api::route_table(),
            haneul_compute::api::guard(effective(
                cfg.compute_policy_file(),
                haneul_compute::policy_defaults::DEFAULT_RULES,
            )?),
            HandlerRules::OwnScope,
        ),
        service(
            "network",
            cfg.network.port,
            haneul_network::api::route_table(),
            haneul_network::api::guard(effective(
                cfg.network_policy_file(),
                haneul_network::policy_defaults::DEFAULT_RULES,
            )?),
            HandlerRules::OwnScope,
        ),
        service(
            "image",
            cfg.image.port,
            haneul_image::api::route_table(),
            haneul_image::api::guard(effective(cfg.image_policy_file(), haneul_image::policy_defaults::DEFAULT_RULES)?),
            HandlerRules::OwnScope,
        ),
        service(
            "placement",
            cfg.placement.port,
            haneul_placement::api::route_table(),
            haneul_placement::api::guard(effective(
                cfg.placement_policy_file(),
                haneul_placement::policy_defaults::DEFAULT_RULES,
            )?),
            HandlerRules::OwnScope,
        ),
    ];
    println!("{}", serde_json::to_string_pretty(&json!({"services": services}))?);
    Ok(())
}
