//! Allocation candidates: which providers (alone, or several of one tree) can satisfy a
//! request of resources, traits and aggregates, and the allocation that would claim them.
//!
//! A request has request groups. The unsuffixed group (`resources=`) may take each resource
//! class from a different provider of one tree; a suffixed group (`resources1=`,
//! `resources_GPU=`) takes all of its resources from one provider. `group_policy=isolate`
//! keeps suffixed groups on distinct providers. Sharing providers (`MISC_SHARES_VIA_AGGREGATE`)
//! are not considered.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Inventory, Model, Provider};

/// One request group.
#[derive(Clone, Debug, Default)]
pub struct Group {
    /// `""` for the unsuffixed group.
    pub suffix: String,
    pub resources: BTreeMap<String, i64>,
    /// Each entry is satisfied by any one of its traits (`in:` lists, 1.39); all entries must be.
    pub required: Vec<BTreeSet<String>>,
    pub forbidden: BTreeSet<String>,
    /// Each entry: the provider (or its root) is in one of these aggregates.
    pub member_of: Vec<BTreeSet<String>>,
    pub forbidden_aggregates: BTreeSet<String>,
    pub in_tree: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupPolicy {
    None,
    Isolate,
}

#[derive(Clone, Debug, Default)]
pub struct Query {
    pub groups: Vec<Group>,
    pub group_policy: Option<GroupPolicy>,
    pub limit: Option<usize>,
    /// Traits the root of the tree must (not) have.
    pub root_required: Vec<BTreeSet<String>>,
    pub root_forbidden: BTreeSet<String>,
    /// Each entry: the providers of these group suffixes are all in the subtree of one of them.
    pub same_subtree: Vec<Vec<String>>,
}

/// One way to satisfy the query.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// provider → class → amount.
    pub allocations: BTreeMap<String, BTreeMap<String, i64>>,
    /// group suffix → providers that satisfy it.
    pub mappings: BTreeMap<String, Vec<String>>,
    pub root: String,
}

/// The most combinations looked at per tree, so that a wide query cannot run away.
const MAX_COMBINATIONS_PER_TREE: usize = 10_000;

fn satisfies_traits(traits: &BTreeSet<String>, required: &[BTreeSet<String>], forbidden: &BTreeSet<String>) -> bool {
    required.iter().all(|any| any.iter().any(|t| traits.contains(t))) && forbidden.iter().all(|t| !traits.contains(t))
}

fn in_aggregates(m: &Model, p: &Provider, g: &Group) -> bool {
    let root_aggs = m.providers.get(&p.root).map(|r| &r.aggregates);
    let member = |agg: &String| p.aggregates.contains(agg) || root_aggs.is_some_and(|r| r.contains(agg));
    g.member_of.iter().all(|any| any.iter().any(member)) && !g.forbidden_aggregates.iter().any(member)
}

fn fits(inv: Option<&Inventory>, used: i64, n: i64) -> bool {
    inv.is_some_and(|inv| {
        n >= inv.min_unit && n <= inv.max_unit && n % inv.step_size == 0 && used + n <= inv.capacity()
    })
}

/// One provider alone satisfies the group (the filters of `GET /resource_providers`, where
/// only the provider's own aggregates count).
pub fn provider_matches(p: &Provider, usages: &BTreeMap<&str, BTreeMap<&str, i64>>, g: &Group) -> bool {
    let used = |rc: &str| usages.get(p.id.as_str()).and_then(|u| u.get(rc)).copied().unwrap_or(0);
    let member = |agg: &String| p.aggregates.contains(agg);
    let own_aggregates =
        g.member_of.iter().all(|any| any.iter().any(member)) && !g.forbidden_aggregates.iter().any(member);
    own_aggregates
        && satisfies_traits(&p.traits, &g.required, &g.forbidden)
        && g.resources.iter().all(|(rc, n)| {
            p.inventories.get(rc).is_some_and(|inv| used(rc) + n <= inv.capacity() && *n <= inv.max_unit)
        })
}

/// The ways one group can be satisfied inside one tree: provider → class → amount maps.
fn group_options(
    m: &Model,
    tree: &[&Provider],
    usages: &BTreeMap<&str, BTreeMap<&str, i64>>,
    g: &Group,
) -> Vec<BTreeMap<String, BTreeMap<String, i64>>> {
    let used = |p: &Provider, rc: &str| usages.get(p.id.as_str()).and_then(|u| u.get(rc)).copied().unwrap_or(0);
    let eligible: Vec<&Provider> = tree
        .iter()
        .copied()
        .filter(|p| in_aggregates(m, p, g))
        .filter(|p| g.in_tree.as_ref().is_none_or(|t| m.providers.get(t).is_some_and(|tp| tp.root == p.root)))
        .collect();
    if !g.suffix.is_empty() || g.resources.is_empty() {
        // One provider takes the whole group and carries its traits.
        return eligible
            .iter()
            .filter(|p| satisfies_traits(&p.traits, &g.required, &g.forbidden))
            .filter(|p| g.resources.iter().all(|(rc, n)| fits(p.inventories.get(rc), used(p, rc), *n)))
            .map(|p| {
                let mut a = BTreeMap::new();
                if !g.resources.is_empty() {
                    a.insert(p.id.clone(), g.resources.clone());
                }
                if a.is_empty() {
                    // A resourceless group (1.35) still names its provider in the mappings.
                    a.insert(p.id.clone(), BTreeMap::new());
                }
                a
            })
            .collect();
    }
    // The unsuffixed group: each class from any provider of the tree; the traits of the
    // providers used, together, must satisfy the group.
    let per_class: Vec<(&String, i64, Vec<&Provider>)> = g
        .resources
        .iter()
        .map(|(rc, n)| {
            let ps = eligible.iter().copied().filter(|p| fits(p.inventories.get(rc), used(p, rc), *n)).collect();
            (rc, *n, ps)
        })
        .collect();
    if per_class.iter().any(|(_, _, ps)| ps.is_empty()) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut idx = vec![0usize; per_class.len()];
    loop {
        let mut a: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        let mut traits = BTreeSet::new();
        for (k, (rc, n, ps)) in per_class.iter().enumerate() {
            let p = ps[idx[k]];
            a.entry(p.id.clone()).or_default().insert((*rc).clone(), *n);
            traits.extend(p.traits.iter().cloned());
        }
        if satisfies_traits(&traits, &g.required, &g.forbidden) {
            out.push(a);
        }
        if out.len() >= MAX_COMBINATIONS_PER_TREE {
            break;
        }
        // Next combination (odometer order).
        let mut k = 0;
        loop {
            if k == idx.len() {
                return out;
            }
            idx[k] += 1;
            if idx[k] < per_class[k].2.len() {
                break;
            }
            idx[k] = 0;
            k += 1;
        }
    }
    out
}

/// Every candidate, tree by tree in provider order, up to `query.limit`.
pub fn candidates(m: &Model, q: &Query) -> Vec<Candidate> {
    let usages = m.usages();
    let mut out = Vec::new();
    for root in m.providers.values().filter(|p| p.parent.is_none()) {
        if !satisfies_traits(&root.traits, &q.root_required, &q.root_forbidden) {
            continue;
        }
        let tree: Vec<&Provider> = m.tree(&root.id).collect();
        let options: Vec<Vec<BTreeMap<String, BTreeMap<String, i64>>>> =
            q.groups.iter().map(|g| group_options(m, &tree, &usages, g)).collect();
        if options.iter().any(Vec::is_empty) {
            continue;
        }
        let mut idx = vec![0usize; options.len()];
        let mut seen = 0usize;
        'combos: loop {
            seen += 1;
            if let Some(c) = combine(m, q, &usages, &root.id, &options, &idx) {
                if !out.contains(&c) {
                    out.push(c);
                    if q.limit.is_some_and(|l| out.len() >= l) {
                        return out;
                    }
                }
            }
            if seen >= MAX_COMBINATIONS_PER_TREE {
                break;
            }
            let mut k = 0;
            loop {
                if k == idx.len() {
                    break 'combos;
                }
                idx[k] += 1;
                if idx[k] < options[k].len() {
                    break;
                }
                idx[k] = 0;
                k += 1;
            }
        }
    }
    out
}

/// One choice per group, merged into one allocation if the groups fit together.
fn combine(
    m: &Model,
    q: &Query,
    usages: &BTreeMap<&str, BTreeMap<&str, i64>>,
    root: &str,
    options: &[Vec<BTreeMap<String, BTreeMap<String, i64>>>],
    idx: &[usize],
) -> Option<Candidate> {
    let mut allocations: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut mappings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut suffixed_providers: Vec<&String> = Vec::new();
    for (k, g) in q.groups.iter().enumerate() {
        let choice = &options[k][idx[k]];
        for (rp, res) in choice {
            let entry = allocations.entry(rp.clone()).or_default();
            for (rc, n) in res {
                *entry.entry(rc.clone()).or_default() += n;
            }
            mappings.entry(g.suffix.clone()).or_default().push(rp.clone());
            if !g.suffix.is_empty() {
                suffixed_providers.push(rp);
            }
        }
    }
    if q.group_policy == Some(GroupPolicy::Isolate) {
        let distinct: BTreeSet<&&String> = suffixed_providers.iter().collect();
        if distinct.len() != suffixed_providers.len() {
            return None;
        }
    }
    // Groups that landed on one provider must fit together.
    for (rp, res) in &allocations {
        let p = m.providers.get(rp)?;
        for (rc, n) in res {
            let used = usages.get(rp.as_str()).and_then(|u| u.get(rc.as_str())).copied().unwrap_or(0);
            if used + n > p.inventories.get(rc).map_or(0, Inventory::capacity) {
                return None;
            }
        }
    }
    for suffixes in &q.same_subtree {
        let members: Vec<&String> = suffixes.iter().filter_map(|s| mappings.get(s)).flatten().collect();
        let shared_ancestor = members.iter().any(|a| members.iter().all(|p| m.is_ancestor_or_self(a, p)));
        if !members.is_empty() && !shared_ancestor {
            return None;
        }
    }
    allocations.retain(|_, res| !res.is_empty());
    if allocations.is_empty() {
        return None;
    }
    for v in mappings.values_mut() {
        v.sort();
        v.dedup();
    }
    Some(Candidate { allocations, mappings, root: root.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use std::sync::Arc;

    fn inv(total: i64, ratio: f64) -> Inventory {
        Inventory { total, reserved: 0, min_unit: 1, max_unit: total, step_size: 1, allocation_ratio: ratio }
    }

    fn add(m: &mut Model, id: &str, parent: Option<&str>, invs: &[(&str, Inventory)], traits: &[&str]) {
        let root = parent.map_or(id.to_string(), |p| m.providers[p].root.clone());
        m.providers.insert(
            id.into(),
            Arc::new(Provider {
                id: id.into(),
                name: id.into(),
                generation: 0,
                parent: parent.map(Into::into),
                root,
                inventories: invs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
                traits: traits.iter().map(|t| t.to_string()).collect(),
                aggregates: BTreeSet::new(),
                created_at: Utc::now(),
                updated_at: Utc::now(),
            }),
        );
    }

    fn group(suffix: &str, res: &[(&str, i64)]) -> Group {
        Group {
            suffix: suffix.into(),
            resources: res.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_host_without_room_is_not_a_candidate() {
        let mut m = Model::default();
        add(&mut m, "a", None, &[("VCPU", inv(2, 1.0)), ("MEMORY_MB", inv(1024, 1.0))], &[]);
        add(&mut m, "b", None, &[("VCPU", inv(8, 1.0)), ("MEMORY_MB", inv(8192, 1.0))], &[]);
        let q = Query { groups: vec![group("", &[("VCPU", 4), ("MEMORY_MB", 512)])], ..Default::default() };
        let c = candidates(&m, &q);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].root, "b");
        assert_eq!(c[0].allocations["b"]["VCPU"], 4);
    }

    #[test]
    fn required_and_forbidden_traits_filter_providers() {
        let mut m = Model::default();
        add(&mut m, "a", None, &[("VCPU", inv(8, 1.0))], &["HW_CPU_X86_AVX"]);
        add(&mut m, "b", None, &[("VCPU", inv(8, 1.0))], &[]);
        let mut g = group("", &[("VCPU", 1)]);
        g.required = vec![["HW_CPU_X86_AVX".to_string()].into()];
        let q = Query { groups: vec![g.clone()], ..Default::default() };
        assert_eq!(candidates(&m, &q).iter().map(|c| c.root.as_str()).collect::<Vec<_>>(), ["a"]);
        g.required.clear();
        g.forbidden = ["HW_CPU_X86_AVX".to_string()].into();
        let q = Query { groups: vec![g], ..Default::default() };
        assert_eq!(candidates(&m, &q).iter().map(|c| c.root.as_str()).collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn nested_providers_combine_and_isolate_keeps_groups_apart() {
        let mut m = Model::default();
        add(&mut m, "host", None, &[("VCPU", inv(4, 1.0))], &[]);
        add(&mut m, "gpu1", Some("host"), &[("VGPU", inv(1, 1.0))], &[]);
        add(&mut m, "gpu2", Some("host"), &[("VGPU", inv(1, 1.0))], &[]);
        let q = Query {
            groups: vec![group("", &[("VCPU", 1)]), group("1", &[("VGPU", 1)]), group("2", &[("VGPU", 1)])],
            group_policy: Some(GroupPolicy::Isolate),
            ..Default::default()
        };
        let c = candidates(&m, &q);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c.iter().all(|c| c.mappings["1"] != c.mappings["2"]));
        // Without isolation both groups may land on one GPU provider, which cannot hold two.
        let q = Query { group_policy: Some(GroupPolicy::None), ..q };
        assert_eq!(candidates(&m, &q).len(), 2);
    }

    #[test]
    fn allocation_ratio_and_reserved_shape_capacity() {
        let mut m = Model::default();
        let mut i = inv(4, 4.0);
        i.reserved = 2;
        i.max_unit = 100;
        add(&mut m, "a", None, &[("VCPU", i)], &[]);
        let q = |n| Query { groups: vec![group("", &[("VCPU", n)])], ..Default::default() };
        assert_eq!(candidates(&m, &q(8)).len(), 1);
        assert!(candidates(&m, &q(9)).is_empty());
    }
}
