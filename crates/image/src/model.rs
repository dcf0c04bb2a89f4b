//! The image service's state: images and their members, one snapshot written through to the
//! database (`core::docstore`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use haneul_core::docstore::{Record, Table};
use serde::{Deserialize, Serialize};

/// The document tables, in creation order.
/// Every table of this service, for the check that services sharing a database name none alike.
pub const TABLES: &[&str] = <Model as haneul_core::docstore::Snapshot>::TABLES;

/// An image's life, as Glance names the states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Saving,
    Uploading,
    Importing,
    Active,
    Deactivated,
    Killed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Saving => "saving",
            Status::Uploading => "uploading",
            Status::Importing => "importing",
            Status::Active => "active",
            Status::Deactivated => "deactivated",
            Status::Killed => "killed",
        }
    }

    /// Whether Glance allows moving from `self` to `to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Queued, Saving | Uploading | Importing | Active)
                | (Saving, Active | Killed | Queued)
                | (Uploading, Importing | Queued)
                | (Importing, Active | Queued)
                | (Active, Deactivated)
                | (Deactivated, Active)
        )
    }

    /// An upload or import in progress: not to be left in this state by a restart.
    pub fn is_transient(self) -> bool {
        matches!(self, Status::Saving | Status::Uploading | Status::Importing)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Community,
    Shared,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Community => "community",
            Visibility::Shared => "shared",
            Visibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        Some(match s {
            "public" => Visibility::Public,
            "community" => Visibility::Community,
            "shared" => Visibility::Shared,
            "private" => Visibility::Private,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    pub status: Status,
    pub visibility: Visibility,
    pub protected: bool,
    pub os_hidden: bool,
    pub owner: Option<String>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    /// A set, kept in the order tags were added.
    pub tags: Vec<String>,
    /// Extra properties: always strings.
    pub properties: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Bytes staged for a `glance-direct` import, when some are.
    #[serde(default)]
    pub staged: bool,
}

impl Image {
    pub fn new(id: String, owner: Option<String>, now: DateTime<Utc>) -> Image {
        Image {
            id,
            name: None,
            status: Status::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            owner,
            disk_format: None,
            container_format: None,
            min_disk: 0,
            min_ram: 0,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            tags: Vec::new(),
            properties: BTreeMap::new(),
            created_at: now,
            updated_at: now,
            staged: false,
        }
    }

    /// Back to `queued` with no data, as after a failed upload.
    pub fn clear_data(&mut self) {
        self.status = Status::Queued;
        self.size = None;
        self.virtual_size = None;
        self.checksum = None;
        self.os_hash_algo = None;
        self.os_hash_value = None;
        self.staged = false;
    }
}

/// Index of images by creation time (the default listing is newest first).
pub const IMAGE_CREATED: &str = "created";

impl Image {
    /// The creation time as the index files it: fixed width, so text order is time order.
    pub fn created_key(&self) -> String {
        haneul_core::docstore::time_key(&self.created_at)
    }
}

impl Record for Image {
    type Model = Model;
    const TABLE: &'static str = "images";
    fn id(&self) -> &str {
        &self.id
    }
    fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
        f(IMAGE_CREATED, &self.created_key());
    }
    fn table(m: &Model) -> &Table<Self> {
        &m.images
    }
    fn table_mut(m: &mut Model) -> &mut Table<Self> {
        &mut m.images
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Pending,
    Accepted,
    Rejected,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Accepted => "accepted",
            MemberStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<MemberStatus> {
        Some(match s {
            "pending" => MemberStatus::Pending,
            "accepted" => MemberStatus::Accepted,
            "rejected" => MemberStatus::Rejected,
            _ => return None,
        })
    }
}

/// A project an image is shared with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    /// `<image id>/<member id>`.
    pub id: String,
    pub image_id: String,
    pub member_id: String,
    pub status: MemberStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Member {
    pub fn key(image_id: &str, member_id: &str) -> String {
        format!("{image_id}/{member_id}")
    }
}

impl Record for Member {
    type Model = Model;
    const TABLE: &'static str = "image_members";
    fn id(&self) -> &str {
        &self.id
    }
    fn table(m: &Model) -> &Table<Self> {
        &m.members
    }
    fn table_mut(m: &mut Model) -> &mut Table<Self> {
        &mut m.members
    }
}

#[derive(Clone, Default)]
pub struct Model {
    generation: u64,
    pub images: Table<Image>,
    pub members: Table<Member>,
}

impl Model {
    pub fn member(&self, image_id: &str, project_id: &str) -> Option<&Member> {
        self.members.get(&Member::key(image_id, project_id)).map(|m| &**m)
    }

    pub fn members_of<'a>(&'a self, image_id: &str) -> impl Iterator<Item = &'a Member> + 'a {
        haneul_core::docstore::children(&self.members, image_id)
    }
}

haneul_core::snapshot!(Model; Image, Member);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_transitions_follow_glance() {
        use Status::*;
        assert!(Queued.can_become(Saving));
        assert!(Saving.can_become(Queued));
        assert!(Active.can_become(Deactivated) && Deactivated.can_become(Active));
        assert!(!Active.can_become(Saving), "a second upload to an active image");
        assert!(!Uploading.can_become(Saving), "an upload to a staged image");
        assert!(!Deactivated.can_become(Saving));
        assert!(Saving.is_transient() && Uploading.is_transient() && Importing.is_transient());
        assert!(!Queued.is_transient() && !Active.is_transient());
    }

    #[test]
    fn members_of_lists_only_that_image() {
        let mut m = Model::default();
        let now = Utc::now();
        for (img, member) in [("a", "p1"), ("a", "p2"), ("ab", "p1"), ("b", "p1")] {
            let rec = Member {
                id: Member::key(img, member),
                image_id: img.into(),
                member_id: member.into(),
                status: MemberStatus::Pending,
                created_at: now,
                updated_at: now,
            };
            m.members.insert(rec.id.clone(), std::sync::Arc::new(rec));
        }
        let ids: Vec<&str> = m.members_of("a").map(|x| x.member_id.as_str()).collect();
        assert_eq!(ids, ["p1", "p2"]);
        assert!(m.member("ab", "p1").is_some() && m.member("a", "p3").is_none());
    }

    #[test]
    fn clearing_data_returns_to_queued_without_checksums() {
        let mut img = Image::new("i".into(), Some("p".into()), Utc::now());
        img.status = Status::Saving;
        img.size = Some(5);
        img.checksum = Some("x".into());
        img.staged = true;
        img.clear_data();
        assert_eq!(img.status, Status::Queued);
        assert!(img.size.is_none() && img.checksum.is_none() && !img.staged);
    }
}
