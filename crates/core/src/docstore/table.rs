//! A table of a snapshot: its records by id, its unique keys and its secondary indexes, all
//! in persistent ordered maps, so that copying a table for a write is O(1) and a change
//! copies only the path to what it changes (ADR 0006).

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use super::Record;

/// A record's id, shared by its row and all its index entries (one allocation per record).
type Id = Arc<str>;

/// An index entry: the index's name, the key, the record's id. Entries with equal keys
/// share the key's allocation (a network's thousand ports hold one copy of its id).
type Entry = (&'static str, Arc<str>, Id);

/// An index entry as a bound of a range.
fn entry(name: &'static str, key: &str, id: &str) -> Entry {
    (name, Arc::from(key), Arc::from(id))
}

/// A time as an index key: fixed width, so the keys' text order is the times' order
/// (creation-time indexes that list newest first, [`Table::by_prefix_rev`]).
pub fn time_key(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9f").to_string()
}

/// A record in a table: equal to another only when it is the same record (the same
/// allocation), so comparing two copies of a table skips what they share and costs nothing
/// per record ([`Table::changes_since`]).
struct Row<T>(Arc<T>);

impl<T> Clone for Row<T> {
    fn clone(&self) -> Self {
        Row(self.0.clone())
    }
}

impl<T> PartialEq for Row<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What became of one record between two copies of a table: before and after (none where
/// it did not exist).
pub type Change<'a, T> = (Option<&'a Arc<T>>, Option<&'a Arc<T>>);

/// The records of one kind. Reads never wait; [`Txn`](super::Txn) changes a copy.
pub struct Table<T> {
    rows: OrdMap<Id, Row<T>>,
    /// Unique key → id.
    unique: OrdMap<Box<str>, Id>,
    index: OrdSet<Entry>,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Table { rows: self.rows.clone(), unique: self.unique.clone(), index: self.index.clone() }
    }
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { rows: OrdMap::new(), unique: OrdMap::new(), index: OrdSet::new() }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<T> Table<T> {
    pub fn get(&self, id: &str) -> Option<&Arc<T>> {
        self.rows.get(id).map(|r| &r.0)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.rows.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The records in id order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Arc<T>> + '_ {
        self.rows.values().map(|r| &r.0)
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.rows.keys().map(|k| &**k)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &Arc<T>)> + '_ {
        self.rows.iter().map(|(k, r)| (&**k, &r.0))
    }

    /// The records that differ between `old` (an earlier copy of this table) and this one,
    /// in id order: added, replaced or removed. What the two copies share is skipped
    /// whole, so this costs the changes made since `old`, not the table's size.
    pub fn changes_since<'a>(&'a self, old: &'a Table<T>) -> impl Iterator<Item = Change<'a, T>> + 'a {
        use imbl::ordmap::DiffItem;
        old.rows.diff(&self.rows).map(|d| match d {
            DiffItem::Add(_, new) => (None, Some(&new.0)),
            DiffItem::Update { old: (_, old), new: (_, new) } => (Some(&old.0), Some(&new.0)),
            DiffItem::Remove(_, old) => (Some(&old.0), None),
        })
    }

    /// The records whose id is in `range`, in id order.
    pub fn range<R: std::ops::RangeBounds<String>>(
        &self,
        range: R,
    ) -> impl DoubleEndedIterator<Item = (&str, &Arc<T>)> + '_ {
        use std::ops::Bound;
        let bound = |b: Bound<&String>| match b {
            Bound::Included(k) => Bound::Included(Id::from(k.as_str())),
            Bound::Excluded(k) => Bound::Excluded(Id::from(k.as_str())),
            Bound::Unbounded => Bound::Unbounded,
        };
        let r = (bound(range.start_bound()), bound(range.end_bound()));
        self.rows.range(r).map(|(k, r)| (&**k, &r.0))
    }

    /// The records after `marker` (exclusive; from the first without one), in id order.
    pub fn after<'a>(&'a self, marker: Option<&str>) -> impl Iterator<Item = &'a Arc<T>> + 'a {
        let from = marker.map(|m| std::ops::Bound::Excluded(Id::from(m))).unwrap_or(std::ops::Bound::Unbounded);
        self.rows.range((from, std::ops::Bound::Unbounded)).map(|(_, v)| &v.0)
    }

    /// The id of the record holding unique key `key`.
    pub fn by_unique(&self, key: &str) -> Option<&Arc<T>> {
        self.unique.get(key).and_then(|id| self.get(id))
    }

    /// The ids filed under `key` in index `name`, in id order.
    pub fn ids_by<'a>(&'a self, name: &'static str, key: &str) -> impl Iterator<Item = &'a str> + 'a {
        let from = entry(name, key, "");
        let to = entry(name, &format!("{key}\0"), "");
        self.index.range(from..to).map(|(_, _, id)| &**id)
    }

    /// The records filed under `key` in index `name`, in id order.
    pub fn by<'a>(&'a self, name: &'static str, key: &str) -> impl Iterator<Item = &'a T> + 'a {
        self.ids_by(name, key).filter_map(|id| self.get(id)).map(|v| &**v)
    }

    /// The records filed under `key` in index `name` with an id after `marker` (all without
    /// one), in id order: a page of an index.
    pub fn by_after<'a>(
        &'a self,
        name: &'static str,
        key: &str,
        marker: Option<&str>,
    ) -> impl Iterator<Item = &'a T> + 'a {
        use std::ops::Bound;
        let from = match marker {
            Some(m) => Bound::Excluded(entry(name, key, m)),
            None => Bound::Included(entry(name, key, "")),
        };
        let to = Bound::Excluded(entry(name, &format!("{key}\0"), ""));
        self.index.range((from, to)).filter_map(|(_, _, id)| self.get(id)).map(|v| &**v)
    }

    /// The records filed in index `name` under keys that start with `prefix`, last key
    /// first (descending key, then descending id), from just before `(key, id)` when given:
    /// a page of a newest-first listing over an index of creation times.
    pub fn by_prefix_rev<'a>(
        &'a self,
        name: &'static str,
        prefix: &str,
        before: Option<(&str, &str)>,
    ) -> impl Iterator<Item = &'a Arc<T>> + 'a {
        use std::ops::Bound;
        let from = entry(name, prefix, "");
        let to = match before {
            Some((k, id)) => Bound::Excluded(entry(name, k, id)),
            None => Bound::Excluded(entry(name, &format!("{prefix}\u{10ffff}"), "")),
        };
        let prefix = prefix.to_string();
        self.index
            .range((Bound::Included(from), to))
            .rev()
            .take_while(move |(n, k, _)| *n == name && k.starts_with(&prefix))
            .filter_map(|(_, _, id)| self.get(id))
    }

    /// Whether any record is filed under `key` in index `name`.
    pub fn any_by(&self, name: &'static str, key: &str) -> bool {
        self.ids_by(name, key).next().is_some()
    }

    /// The keys of index `name` from `from` on (inclusive), in key order, each once per
    /// record: for walking a sorted key space (addresses in use on a subnet, ...).
    pub fn index_keys_from<'a>(
        &'a self,
        name: &'static str,
        from: &str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let start = entry(name, from, "");
        self.index.range(start..).take_while(move |(n, _, _)| *n == name).map(|(_, k, id)| (&**k, &**id))
    }
}

impl<T: Record> Table<T> {
    /// Files a record (replacing the one with its id), with its unique key and index
    /// entries. The caller has checked the unique key is free ([`Table::unique_holder`]).
    pub fn insert(&mut self, id: String, v: Arc<T>) -> Option<Arc<T>> {
        let old = self.remove(&id);
        let id: Id = Arc::from(id);
        if let Some(key) = v.unique_key() {
            self.unique.insert(key.into_boxed_str(), id.clone());
        }
        v.index_keys(&mut |name, key| {
            // The key's allocation of an entry already filed under it, if any.
            let first = self.index.range(entry(name, key, "")..).next();
            let key = match first {
                Some((n, k, _)) if *n == name && &**k == key => k.clone(),
                _ => Arc::from(key),
            };
            self.index.insert((name, key, id.clone()));
        });
        self.rows.insert(id, Row(v));
        old
    }

    pub fn remove(&mut self, id: &str) -> Option<Arc<T>> {
        let old = self.rows.remove(id)?.0;
        if let Some(key) = old.unique_key() {
            if self.unique.get(key.as_str()).is_some_and(|holder| &**holder == id) {
                self.unique.remove(key.as_str());
            }
        }
        old.index_keys(&mut |name, key| {
            self.index.remove(&entry(name, key, id));
        });
        Some(old)
    }

    /// The id of another record than `id` holding unique key `key`.
    pub fn unique_holder(&self, key: &str, id: &str) -> Option<&str> {
        self.unique.get(key).map(|h| &**h).filter(|holder| *holder != id)
    }
}

impl<'a, T> IntoIterator for &'a Table<T> {
    type Item = (&'a str, &'a Arc<T>);
    type IntoIter = Box<dyn DoubleEndedIterator<Item = (&'a str, &'a Arc<T>)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl<T> std::ops::Index<&str> for Table<T> {
    type Output = Arc<T>;
    fn index(&self, id: &str) -> &Arc<T> {
        self.get(id).expect("no record with this id")
    }
}

impl<T> std::ops::Index<&String> for Table<T> {
    type Output = Arc<T>;
    fn index(&self, id: &String) -> &Arc<T> {
        self.get(id.as_str()).expect("no record with this id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    struct Row {
        id: String,
        name: String,
        group: String,
        tags: Vec<String>,
    }

    #[derive(Clone, Default)]
    struct Rows {
        rows: Table<Row>,
    }

    impl Record for Row {
        type Model = Rows;
        const TABLE: &'static str = "rows";
        fn id(&self) -> &str {
            &self.id
        }
        fn unique_key(&self) -> Option<String> {
            Some(self.name.clone())
        }
        fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
            f("group", &self.group);
            for t in &self.tags {
                f("tag", t);
            }
        }
        fn table(m: &Rows) -> &Table<Row> {
            &m.rows
        }
        fn table_mut(m: &mut Rows) -> &mut Table<Row> {
            &mut m.rows
        }
    }

    fn ids(it: impl Iterator<Item = String>) -> Vec<String> {
        let mut v: Vec<String> = it.collect();
        v.sort();
        v
    }

    /// Random puts (new and replacing) and deletes: every index answers what a scan of the
    /// rows answers, and a copy taken before a change does not see it.
    #[test]
    fn indexes_agree_with_a_scan_after_random_changes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut t: Table<Row> = Table::default();
        for step in 0..3000 {
            let id = format!("r{}", rng.gen_range(0..200));
            let before = t.clone();
            let before_len = before.len();
            if rng.gen_bool(0.7) {
                let row = Row {
                    id: id.clone(),
                    name: format!("n{}", rng.gen_range(0..400)),
                    group: format!("g{}", rng.gen_range(0..10)),
                    tags: (0..rng.gen_range(0..3)).map(|_| format!("t{}", rng.gen_range(0..5))).collect(),
                };
                if t.unique_holder(&row.name, &row.id).is_some() {
                    continue;
                }
                t.insert(id.clone(), Arc::new(row));
            } else {
                t.remove(&id);
            }
            assert_eq!(before.len(), before_len, "a copy changed with the original at step {step}");
            // The changes since the copy are exactly what a comparison of the two finds.
            let changed: Vec<(Option<Row>, Option<Row>)> =
                t.changes_since(&before).map(|(o, n)| (o.map(|r| (**r).clone()), n.map(|r| (**r).clone()))).collect();
            let touched = before.get(&id).map(|r| (**r).clone()) != t.get(&id).map(|r| (**r).clone())
                || before.get(&id).is_some() != t.get(&id).is_some();
            let expected: Vec<(Option<Row>, Option<Row>)> = if touched {
                vec![(before.get(&id).map(|r| (**r).clone()), t.get(&id).map(|r| (**r).clone()))]
            } else {
                Vec::new()
            };
            if !(changed.len() == 1 && expected.is_empty() && changed[0].0 == changed[0].1) {
                // (A put of an equal record is a new record: seen as replaced.)
                assert_eq!(changed, expected, "changes since the copy at step {step}");
            }
            for g in 0..10 {
                let g = format!("g{g}");
                let scan = ids(t.values().filter(|r| r.group == g).map(|r| r.id.clone()));
                assert_eq!(ids(t.by("group", &g).map(|r| r.id.clone())), scan, "group {g} at step {step}");
            }
            for k in 0..5 {
                let k = format!("t{k}");
                let scan = ids(t.values().filter(|r| r.tags.contains(&k)).map(|r| r.id.clone()));
                assert_eq!(ids(t.by("tag", &k).map(|r| r.id.clone())), scan, "tag {k} at step {step}");
            }
            for r in t.values() {
                assert_eq!(t.by_unique(&r.name).map(|x| x.id.clone()), Some(r.id.clone()));
            }
        }
    }

    #[test]
    fn a_prefix_walks_backwards_from_a_marker() {
        let mut t: Table<Row> = Table::default();
        for (id, group) in
            [("1", "p/2026-01"), ("2", "p/2026-03"), ("3", "p/2026-02"), ("4", "q/2026-09"), ("5", "p/2026-03")]
        {
            let row = Row { id: id.into(), name: id.into(), group: group.into(), tags: vec![] };
            t.insert(id.into(), Arc::new(row));
        }
        let ids = |it: &mut dyn Iterator<Item = &Arc<Row>>| it.map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&mut t.by_prefix_rev("group", "p/", None)), ["5", "2", "3", "1"]);
        assert_eq!(ids(&mut t.by_prefix_rev("group", "p/", Some(("p/2026-03", "2")))), ["3", "1"]);
        assert_eq!(ids(&mut t.by_prefix_rev("group", "", None)), ["4", "5", "2", "3", "1"]);
    }

    #[test]
    fn keys_sharing_a_prefix_stay_apart() {
        let mut t: Table<Row> = Table::default();
        for (id, group) in [("1", "a"), ("2", "ab"), ("3", "a\u{1}"), ("4", "a")] {
            let row = Row { id: id.into(), name: id.into(), group: group.into(), tags: vec![] };
            t.insert(id.into(), Arc::new(row));
        }
        assert_eq!(t.ids_by("group", "a").collect::<Vec<_>>(), ["1", "4"]);
        assert_eq!(t.ids_by("group", "ab").collect::<Vec<_>>(), ["2"]);
    }
}
