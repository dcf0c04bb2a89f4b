//! The compute service and a host's agent: the controller's wish for each instance (its
//! [`Spec`], `PUT /instances/{uuid}` on the agent's API) and the agent's [`Report`]
//! (`PUT /internal/agents/{host}` on the compute API), which says what each instance is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The power state the controller wants, or the one an instance is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    Running,
    Paused,
    Shutoff,
    /// No QEMU runs; the guest's memory and devices are saved in `suspend.state` and it
    /// carries on from there when it runs again.
    Suspended,
}

/// The image an instance's disk is made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    pub id: String,
    /// `qcow2` or `raw`: the backing format of the overlay.
    pub disk_format: String,
}

/// A guest's network interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    pub port_id: String,
    pub network_id: String,
    pub mac: String,
    pub mtu: u32,
    /// The guest's PCI slot for it: the same whether the NIC came at boot or was plugged in
    /// later, so a saved guest state always matches the devices QEMU is started with. None
    /// (servers made before slots were kept): QEMU places it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u8>,
}

/// What an instance should be. The fields with defaults were added after the first
/// release; a spec without them means "none of that".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Bumped by the controller for every change; the agent applies a spec once and refuses
    /// an older one.
    pub generation: u64,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// Root disk size in GiB; 0 keeps the image's size.
    pub disk_gb: u64,
    pub image: ImageRef,
    /// Config drive files (`openstack/latest/meta_data.json`, ...), base64; none: no drive.
    #[serde(default)]
    pub config_drive: Option<BTreeMap<String, String>>,
    pub power: Power,
    /// Bumped by the controller for each soft reboot, and for each hard one.
    #[serde(default)]
    pub reboots: u64,
    #[serde(default)]
    pub hard_reboots: u64,
    /// Bumped for each rebuild: the root disk is made anew from the image.
    #[serde(default)]
    pub rebuilds: u64,
    /// During a resize: the root disk as it was before is kept (`disk.pre-resize`) until
    /// the resize is confirmed (this goes false) or reverted.
    #[serde(default)]
    pub resize_backup: bool,
    /// Bumped for each revert of a resize: the kept disk comes back.
    #[serde(default)]
    pub reverts: u64,
    /// Rescue: the guest boots from a fresh disk of this image (`disk.rescue`), with its
    /// own root disk attached second; none: it boots from its own disk.
    #[serde(default)]
    pub rescue: Option<ImageRef>,
    /// The guest's network interfaces, in order.
    #[serde(default)]
    pub nics: Vec<Nic>,
}

/// What an instance is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    pub uuid: String,
    /// The generation of the spec last applied in full (0: none yet).
    pub generation: u64,
    pub power: Power,
    pub pid: Option<u32>,
}

/// What the host offers guests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub vcpus: i64,
    pub memory_mb: i64,
    pub disk_gb: i64,
}

/// An agent's report: that it is alive, where it is reached, what its host offers and what
/// each of its instances is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Where the controller reaches the agent's API (`http://...`).
    pub url: String,
    /// Where browsers reach the host's console proxy; empty from agents older than the
    /// proxy.
    #[serde(default)]
    pub console_url: String,
    /// The accelerator guests run with (`kvm` or `tcg`).
    pub accel: String,
    pub resources: Resources,
    pub instances: Vec<Observed>,
}

/// A report as it travels: `{"agent": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    pub agent: Report,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_travels_whole() {
        let spec = Spec {
            generation: 7,
            memory_mib: 512,
            vcpus: 2,
            disk_gb: 1,
            image: ImageRef { id: "img".into(), disk_format: "qcow2".into() },
            config_drive: Some(BTreeMap::from([("openstack/latest/meta_data.json".into(), "e30=".into())])),
            power: Power::Running,
            reboots: 1,
            hard_reboots: 2,
            rebuilds: 3,
            resize_backup: true,
            reverts: 4,
            rescue: Some(ImageRef { id: "r".into(), disk_format: "raw".into() }),
            nics: vec![Nic {
                port_id: "p".into(),
                network_id: "n".into(),
                mac: "fa:16:3e:00:00:01".into(),
                mtu: 1450,
                slot: Some(3),
            }],
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&text).unwrap(), spec);
    }

    #[test]
    fn a_spec_from_the_first_release_still_reads() {
        let old = r#"{"generation":1,"memory_mib":64,"vcpus":1,"disk_gb":0,
            "image":{"id":"i","disk_format":"qcow2"},"power":"running"}"#;
        let spec: Spec = serde_json::from_str(old).unwrap();
        assert!(spec.nics.is_empty() && spec.rescue.is_none() && spec.config_drive.is_none());
    }

    #[test]
    fn a_report_without_a_required_field_is_refused() {
        let missing_accel =
            r#"{"agent":{"url":"http://h:8790","resources":{"vcpus":1,"memory_mb":1,"disk_gb":1},"instances":[]}}"#;
        assert!(serde_json::from_str::<ReportBody>(missing_accel).is_err());
        let unknown = r#"{"agent":{"url":"u","accel":"tcg","resources":{"vcpus":1,"memory_mb":1,"disk_gb":1},"instances":[],"x":1}}"#;
        assert!(serde_json::from_str::<ReportBody>(unknown).is_err());
    }
}
