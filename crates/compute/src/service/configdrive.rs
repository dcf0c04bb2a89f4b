//! What a guest is told about itself: the config drive's files, which the metadata service
//! also serves.

use base64::Engine;
use serde_json::json;

use crate::model::Server;

/// The config drive's files, as Nova writes them (`openstack/latest/...`).
pub fn config_drive_files(s: &Server) -> Vec<(String, Vec<u8>)> {
    let mut public_keys = serde_json::Map::new();
    let mut keys = Vec::new();
    if let (Some(name), Some(data)) = (&s.key_name, &s.key_data) {
        public_keys.insert(name.clone(), json!(data));
        keys.push(json!({"name": name, "type": "ssh", "data": data}));
    }
    let meta = json!({
        "uuid": s.id,
        "meta": s.metadata,
        "public_keys": public_keys,
        "keys": keys,
        "hostname": s.hostname,
        "name": s.name,
        "launch_index": s.launch_index,
        "availability_zone": s.availability_zone,
        "project_id": s.project_id,
        "devices": [],
    });
    let mut files = vec![
        ("openstack/latest/meta_data.json".to_string(), meta.to_string().into_bytes()),
        (
            "openstack/latest/network_data.json".to_string(),
            crate::service::network::network_data(&s.ports).to_string().into_bytes(),
        ),
        ("openstack/latest/vendor_data.json".to_string(), b"{}".to_vec()),
        ("openstack/latest/vendor_data2.json".to_string(), b"{}".to_vec()),
    ];
    if let Some(ud) = &s.user_data {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(ud) {
            files.push(("openstack/latest/user_data".to_string(), bytes));
        }
    }
    files
}
