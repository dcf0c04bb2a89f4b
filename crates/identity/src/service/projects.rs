//! Projects: where a new project may go in the hierarchy, the rules for enabling, disabling
//! and deleting one, and its tags. Every check that reads other projects runs in the write
//! that makes the change.

use std::sync::Arc;

use serde_json::Value;

use super::{Error, Result, Revoke, Txn};
use crate::model::{Assignment, Document, Extra, Limit, Model, Project, ProjectEndpoint, RevocationEvent, TargetKind};

/// Keystone's default `max_project_tree_depth`.
pub const MAX_DEPTH: usize = 5;
/// The most tags a project may have.
pub const MAX_TAGS: usize = 80;

/// The domain and parent project of a new project. `parent_id` may name a project or a domain
/// (a top-level project); without it the project goes in `domain_id`, else in `fallback_domain`.
pub fn placement(
    m: &Model,
    parent_id: Option<&str>,
    domain_id: Option<&str>,
    fallback_domain: &str,
) -> Result<(String, Option<String>)> {
    let (domain_id, parent_id) = match parent_id {
        Some(pid) if m.projects.contains_key(pid) => {
            let parent = &m.projects[pid];
            if domain_id.is_some_and(|d| d != parent.domain_id) {
                return Err(Error::validation("A project must be in the domain of its parent."));
            }
            (parent.domain_id.clone(), Some(pid.to_string()))
        }
        Some(pid) if m.domains.contains_key(pid) => (pid.to_string(), None),
        Some(pid) => return Err(Error::not_found("project", pid)),
        None => (domain_id.unwrap_or(fallback_domain).to_string(), None),
    };
    if !m.domains.contains_key(&domain_id) {
        return Err(Error::not_found("domain", domain_id));
    }
    Ok((domain_id, parent_id))
}

fn name_taken(name: &str) -> Error {
    Error::Conflict(format!(
        "Conflict occurred attempting to store project - it is not permitted to have two projects with the same name in the same domain : {name}."
    ))
}

/// Stores a new project: its parent must exist in its domain, be enabled and leave the tree
/// within [`MAX_DEPTH`]; its name must be free in its domain.
pub fn create(t: &mut Txn, project: Project) -> Result<Arc<Project>> {
    if let Some(pid) = &project.parent_id {
        let parent = t.m.projects.get(pid).ok_or_else(|| Error::not_found("project", pid.clone()))?;
        if parent.domain_id != project.domain_id {
            return Err(Error::validation("A project must be in the domain of its parent."));
        }
    }
    if !t.m.domains.contains_key(&project.domain_id) {
        return Err(Error::not_found("domain", project.domain_id.clone()));
    }
    if let Some(pid) = &project.parent_id {
        let parent = &t.m.projects[pid];
        if !parent.enabled {
            return Err(Error::Forbidden(format!("Cannot create project, since its parent {pid} is disabled.")));
        }
        if t.m.project_parents(parent).len() + 2 > MAX_DEPTH {
            return Err(Error::Forbidden(format!("Max hierarchy depth reached for {pid} branch.")));
        }
    }
    if t.m.projects.by_unique(&crate::model::Project::unique(&project.domain_id, &project.name)).is_some() {
        return Err(name_taken(&project.name));
    }
    Ok(t.put(project)?)
}

/// The attributes a project update may change; `None` leaves one as it is.
#[derive(Default)]
pub struct ProjectPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Merged into the project's options.
    pub options: Option<Extra>,
    pub enabled: Option<bool>,
    /// Merged into the attributes Keystone does not know.
    pub extra: Extra,
}

/// Updates a project. Disabling one revokes its tokens and needs its children disabled;
/// enabling one needs its parent enabled.
pub fn update(t: &mut Txn, id: &str, patch: ProjectPatch) -> Result<Arc<Project>> {
    let mut p = t.edit(&t.m.projects, "project", id)?;
    if let Some(n) = patch.name {
        if t.m.projects.unique_holder(&crate::model::Project::unique(&p.domain_id, &n), id).is_some() {
            return Err(name_taken(&n));
        }
        p.name = n;
    }
    if let Some(d) = patch.description {
        p.description = d;
    }
    if let Some(tags) = patch.tags {
        p.tags = tags;
    }
    if let Some(o) = patch.options {
        p.options.extend(o);
    }
    if let Some(e) = patch.enabled {
        if p.enabled && !e {
            if t.m.projects.by("parent_id", id).any(|c| c.enabled) {
                return Err(Error::Forbidden(format!(
                    "Cannot disable project {id} since its subtree contains enabled projects."
                )));
            }
            t.revoke(RevocationEvent { project_id: Some(id.to_string()), ..Default::default() });
        }
        if !p.enabled && e {
            if let Some(parent) = p.parent_id.as_ref().and_then(|pid| t.m.projects.get(pid)) {
                if !parent.enabled {
                    return Err(Error::Forbidden(format!("Cannot enable project {id} since it has disabled parents.")));
                }
            }
        }
        p.enabled = e;
    }
    p.extra.extend(patch.extra);
    Ok(t.put(p)?)
}

/// Deletes a leaf project with its role assignments, endpoint associations and limits, and
/// revokes its tokens.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    if !t.m.projects.contains_key(id) {
        return Err(Error::not_found("project", id));
    }
    if t.m.projects.any_by("parent_id", id) {
        return Err(Error::Forbidden(format!(
            "Cannot delete the project {id} since it is not a leaf in the hierarchy. Use the cascade option if you want to delete a whole subtree."
        )));
    }
    t.delete_where::<Assignment>(|a| a.target_kind == TargetKind::Project && a.target_id == id);
    let of_project = |d: &Document| d.body.get("project_id").and_then(Value::as_str) == Some(id);
    t.delete_where::<ProjectEndpoint>(|pe| of_project(&pe.0));
    t.delete_where::<Limit>(|l| of_project(&l.0));
    t.delete::<Project>(id);
    t.revoke(RevocationEvent { project_id: Some(id.to_string()), ..Default::default() });
    Ok(())
}

fn too_many_tags() -> Error {
    Error::validation(format!("Invalid input for field 'tags': at most {MAX_TAGS} tags are allowed"))
}

/// Replaces a project's tags (already validated).
pub fn set_tags(t: &mut Txn, id: &str, tags: Vec<String>) -> Result<Arc<Project>> {
    let mut p = t.edit(&t.m.projects, "project", id)?;
    p.tags = tags;
    Ok(t.put(p)?)
}

/// Adds a (valid) tag to a project, unless it has it; at most [`MAX_TAGS`].
pub fn add_tag(t: &mut Txn, id: &str, tag: String) -> Result<()> {
    let mut p = t.edit(&t.m.projects, "project", id)?;
    if !p.tags.contains(&tag) {
        p.tags.push(tag);
    }
    if p.tags.len() > MAX_TAGS {
        return Err(too_many_tags());
    }
    t.put(p)?;
    Ok(())
}

/// Removes a tag from a project; not found when it does not have it.
pub fn remove_tag(t: &mut Txn, id: &str, tag: &str) -> Result<()> {
    let mut p = t.edit(&t.m.projects, "project", id)?;
    if !p.tags.iter().any(|x| x == tag) {
        return Err(Error::not_found("project tag", tag));
    }
    p.tags.retain(|x| x != tag);
    t.put(p)?;
    Ok(())
}
