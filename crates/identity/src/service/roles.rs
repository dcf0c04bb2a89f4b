//! Roles: which roles a user holds on a target (through groups, inheritance down the project
//! tree and implied roles), and the rules for storing roles and role implications.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Error, Result, Revoke, Txn};
use crate::model::{actor_key, ActorKind, Assignment, Extra, ImpliedRole, Model, RevocationEvent, Role, TargetKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleTarget<'a> {
    Project(&'a str),
    Domain(&'a str),
    System,
}

/// Whether assignment `a` grants its role on `target` (before implied roles).
fn applies(m: &Model, a: &Assignment, target: RoleTarget<'_>) -> bool {
    match (target, &a.target_kind) {
        (RoleTarget::System, TargetKind::System) => true,
        (RoleTarget::Domain(d), TargetKind::Domain) => !a.inherited && a.target_id == d,
        (RoleTarget::Project(p), TargetKind::Project) => {
            if !a.inherited {
                return a.target_id == p;
            }
            match m.projects.get(p) {
                Some(proj) => m.project_parents(proj).iter().any(|pp| pp.id == a.target_id),
                None => false,
            }
        }
        (RoleTarget::Project(p), TargetKind::Domain) => {
            a.inherited && m.projects.get(p).is_some_and(|proj| proj.domain_id == a.target_id)
        }
        _ => false,
    }
}

/// The ids of the global roles `user_id` holds on `target`, implied roles included.
/// Domain-specific roles never appear themselves, only the global roles they imply.
pub fn user_roles(m: &Model, user_id: &str, target: RoleTarget<'_>) -> Vec<String> {
    let groups: HashSet<&str> = m.user_groups(user_id).into_iter().collect();
    let actors = std::iter::once(actor_key(&ActorKind::User, user_id))
        .chain(groups.iter().map(|g| actor_key(&ActorKind::Group, g)));
    let direct = actors
        .flat_map(|actor| m.assignments.by("actor", &actor).collect::<Vec<_>>())
        .filter(|a| applies(m, a, target));
    let ids: Vec<String> = direct.map(|a| a.role_id.clone()).collect();
    m.expand_implied(ids).into_iter().filter(|r| m.roles.get(r).is_some_and(|role| role.domain_id.is_none())).collect()
}

/// One row of `GET /v3/role_assignments?effective`.
#[derive(Clone, Debug)]
pub struct EffectiveAssignment {
    pub user_id: String,
    pub role_id: String,
    pub target_kind: TargetKind,
    pub target_id: String,
    /// The group the user holds it through.
    pub via_group: Option<String>,
    /// The role that implied this one.
    pub prior_role: Option<String>,
    /// The stored assignment it comes from.
    pub source: std::sync::Arc<Assignment>,
}

/// Expands stored assignments into the user/role/target triples they grant: group members,
/// projects below inherited targets, and implied roles.
pub fn effective_assignments(m: &Model) -> Vec<EffectiveAssignment> {
    let mut out = Vec::new();
    for a in m.assignments.values() {
        let actors: Vec<(String, Option<String>)> = match a.actor_kind {
            ActorKind::User => vec![(a.actor_id.clone(), None)],
            ActorKind::Group => m
                .memberships
                .values()
                .filter(|ms| ms.group_id == a.actor_id)
                .map(|ms| (ms.user_id.clone(), Some(a.actor_id.clone())))
                .collect(),
        };
        let targets: Vec<(TargetKind, String)> = if !a.inherited {
            vec![(a.target_kind.clone(), a.target_id.clone())]
        } else {
            match a.target_kind {
                TargetKind::Domain => m
                    .projects
                    .values()
                    .filter(|p| p.domain_id == a.target_id)
                    .map(|p| (TargetKind::Project, p.id.clone()))
                    .collect(),
                TargetKind::Project => {
                    m.project_subtree(&a.target_id).into_iter().map(|p| (TargetKind::Project, p.id.clone())).collect()
                }
                TargetKind::System => vec![],
            }
        };
        let mut roles: Vec<(String, Option<String>)> = vec![(a.role_id.clone(), None)];
        for implied in m.expand_implied([a.role_id.clone()]) {
            if implied != a.role_id {
                let prior = m
                    .implied_roles
                    .values()
                    .find(|ir| ir.implied_role_id == implied)
                    .map(|ir| ir.prior_role_id.clone());
                roles.push((implied, prior));
            }
        }
        for (user_id, via_group) in &actors {
            for (tk, tid) in &targets {
                for (role_id, prior) in &roles {
                    out.push(EffectiveAssignment {
                        user_id: user_id.clone(),
                        role_id: role_id.clone(),
                        target_kind: tk.clone(),
                        target_id: tid.clone(),
                        via_group: via_group.clone(),
                        prior_role: prior.clone(),
                        source: a.clone(),
                    });
                }
            }
        }
    }
    out
}

/// A role named in a request by id or by name (global roles only by name).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct RoleRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl RoleRef {
    /// The role it names; not found when there is none.
    pub fn resolve<'m>(&self, m: &'m Model) -> Result<&'m Arc<Role>> {
        let found = match (&self.id, &self.name) {
            (Some(id), _) => m.roles.get(id),
            (None, Some(n)) => m.role_by_name(n),
            _ => None,
        };
        found.ok_or_else(|| Error::not_found("role", self.id.as_deref().or(self.name.as_deref()).unwrap_or_default()))
    }
}

/// Stores a new role, global or in an existing domain, under a name free there.
pub fn create(t: &mut Txn, role: Role) -> Result<Arc<Role>> {
    if let Some(d) = &role.domain_id {
        if !t.m.domains.contains_key(d) {
            return Err(Error::not_found("domain", d.clone()));
        }
    }
    if t.m.roles.values().any(|r| r.domain_id == role.domain_id && r.name == role.name) {
        return Err(name_taken(&role.name));
    }
    Ok(t.put(role)?)
}

fn name_taken(name: &str) -> Error {
    Error::Conflict(format!("Conflict occurred attempting to store role - Duplicate entry found with name {name}."))
}

/// The attributes a role update may change; `None` leaves one as it is.
#[derive(Default)]
pub struct RolePatch {
    pub name: Option<String>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// Merged into the role's options.
    pub options: Option<Extra>,
    /// Merged into the attributes Keystone does not know.
    pub extra: Extra,
}

pub fn update(t: &mut Txn, id: &str, patch: RolePatch) -> Result<Arc<Role>> {
    let mut r = t.edit(&t.m.roles, "role", id)?;
    if let Some(n) = patch.name {
        if t.m.roles.values().any(|x| x.id != id && x.domain_id == r.domain_id && x.name == n) {
            return Err(name_taken(&n));
        }
        r.name = n;
    }
    if let Some(d) = patch.description {
        r.description = d;
    }
    if let Some(o) = patch.options {
        r.options.extend(o);
    }
    r.extra.extend(patch.extra);
    Ok(t.put(r)?)
}

/// Deletes a role with its assignments and implications; revokes the tokens carrying it.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    t.delete::<Role>(id).ok_or_else(|| Error::not_found("role", id))?;
    t.delete_where::<Assignment>(|a| a.role_id == id);
    t.delete_where::<ImpliedRole>(|ir| ir.prior_role_id == id || ir.implied_role_id == id);
    t.revoke(RevocationEvent { role_id: Some(id.to_string()), ..Default::default() });
    Ok(())
}

/// Makes `prior` imply `implied`: both must exist, a global role cannot imply a domain-specific
/// one, and implications make no cycle.
pub fn add_implied(t: &mut Txn, prior: &str, implied: &str) -> Result<()> {
    let p = t.m.roles.get(prior).ok_or_else(|| Error::not_found("role", prior))?;
    let i = t.m.roles.get(implied).ok_or_else(|| Error::not_found("role", implied))?;
    if p.domain_id.is_none() && i.domain_id.is_some() {
        return Err(Error::Forbidden(format!("A global role cannot imply the domain-specific role {implied}.")));
    }
    if p.id == i.id || t.m.expand_implied([implied.to_string()]).iter().any(|r| r == prior) {
        return Err(Error::Forbidden(format!("Implying {implied} from {prior} would make a cycle of implied roles.")));
    }
    t.put(ImpliedRole::new(prior, implied))?;
    Ok(())
}

/// Removes the implication of `implied` by `prior`; `Ok(false)` when there is none (both
/// roles exist).
pub fn remove_implied(t: &mut Txn, prior: &str, implied: &str) -> Result<bool> {
    for r in [prior, implied] {
        if !t.m.roles.contains_key(r) {
            return Err(Error::not_found("role", r));
        }
    }
    Ok(t.delete::<ImpliedRole>(&format!("{prior}/{implied}")).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImpliedRole, Membership, Project, Role};
    use std::sync::Arc;

    fn role(m: &mut Model, id: &str) {
        m.roles.insert(
            id.into(),
            Arc::new(Role {
                id: id.into(),
                name: id.into(),
                domain_id: None,
                description: None,
                options: Default::default(),
                extra: Default::default(),
            }),
        );
    }

    fn project(m: &mut Model, id: &str, parent: Option<&str>) {
        m.projects.insert(
            id.into(),
            Arc::new(Project {
                id: id.into(),
                name: id.into(),
                domain_id: "d".into(),
                parent_id: parent.map(Into::into),
                description: String::new(),
                enabled: true,
                tags: vec![],
                options: Default::default(),
                extra: Default::default(),
            }),
        );
    }

    fn assign(m: &mut Model, a: Assignment) {
        m.assignments.insert(a.id.clone(), Arc::new(a));
    }

    fn setup() -> Model {
        let mut m = Model::default();
        for r in ["admin", "member", "reader"] {
            role(&mut m, r);
        }
        let ir = ImpliedRole::new("admin", "member");
        m.implied_roles.insert(ir.id.clone(), Arc::new(ir));
        let ir = ImpliedRole::new("member", "reader");
        m.implied_roles.insert(ir.id.clone(), Arc::new(ir));
        project(&mut m, "p1", None);
        project(&mut m, "p2", Some("p1"));
        m
    }

    #[test]
    fn implied_roles_are_transitive() {
        let mut m = setup();
        assign(&mut m, Assignment::new(ActorKind::User, "u", TargetKind::Project, "p1", "admin", false));
        let mut r = user_roles(&m, "u", RoleTarget::Project("p1"));
        r.sort();
        assert_eq!(r, vec!["admin", "member", "reader"]);
    }

    #[test]
    fn inherited_project_assignment_applies_below_not_on_target() {
        let mut m = setup();
        assign(&mut m, Assignment::new(ActorKind::User, "u", TargetKind::Project, "p1", "reader", true));
        assert!(user_roles(&m, "u", RoleTarget::Project("p1")).is_empty());
        assert_eq!(user_roles(&m, "u", RoleTarget::Project("p2")), vec!["reader"]);
    }

    #[test]
    fn group_assignment_reaches_members_only() {
        let mut m = setup();
        let ms = Membership::new("g", "u");
        m.memberships.insert(ms.id.clone(), Arc::new(ms));
        assign(&mut m, Assignment::new(ActorKind::Group, "g", TargetKind::Domain, "d", "reader", false));
        assert_eq!(user_roles(&m, "u", RoleTarget::Domain("d")), vec!["reader"]);
        assert!(user_roles(&m, "other", RoleTarget::Domain("d")).is_empty());
    }

    #[test]
    fn inherited_domain_assignment_applies_to_its_projects() {
        let mut m = setup();
        assign(&mut m, Assignment::new(ActorKind::User, "u", TargetKind::Domain, "d", "member", true));
        let mut r = user_roles(&m, "u", RoleTarget::Project("p2"));
        r.sort();
        assert_eq!(r, vec!["member", "reader"]);
        assert!(user_roles(&m, "u", RoleTarget::Domain("d")).is_empty());
    }

    #[test]
    fn effective_listing_expands_groups_and_implied_roles() {
        let mut m = setup();
        let ms = Membership::new("g", "u");
        m.memberships.insert(ms.id.clone(), Arc::new(ms));
        assign(&mut m, Assignment::new(ActorKind::Group, "g", TargetKind::Project, "p1", "member", false));
        let e = effective_assignments(&m);
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|x| x.user_id == "u" && x.via_group.as_deref() == Some("g")));
        assert!(e.iter().any(|x| x.role_id == "reader" && x.prior_role.as_deref() == Some("member")));
    }
}
