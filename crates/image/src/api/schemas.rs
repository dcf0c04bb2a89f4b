//! `GET /v2/schemas/{image,images,member,members}`: the JSON schemas clients such as
//! python-glanceclient fetch and validate against. Every value the API returns fits them.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::routes::{Access, Routes};
use serde_json::{json, Value};

use super::Ctx;

pub fn routes() -> Routes<Ctx> {
    /// Glance asks no rule for its schemas: clients read them to build requests.
    const SCHEMA: Access = Access::Token("clients read the schemas to build requests");
    Routes::new()
        .get("/v2/schemas/image", SCHEMA, || serve(image))
        .get("/v2/schemas/images", SCHEMA, || serve(images))
        .get("/v2/schemas/member", SCHEMA, || serve(member))
        .get("/v2/schemas/members", SCHEMA, || serve(members))
}

async fn serve(f: fn() -> &'static Value) -> Response {
    Json(f()).into_response()
}

pub const DISK_FORMATS: &[&str] = &["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"];
pub const CONTAINER_FORMATS: &[&str] = &["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"];
const UUID_PATTERN: &str = "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$";

fn nullable_enum(values: &[&str]) -> Value {
    let mut e: Vec<Value> = vec![Value::Null];
    e.extend(values.iter().map(|v| json!(v)));
    json!({"type": ["null", "string"], "enum": e})
}

fn image_properties() -> Value {
    let ro_str = |desc: &str| json!({"type": "string", "readOnly": true, "description": desc});
    json!({
        "id": {"type": "string", "pattern": UUID_PATTERN, "description": "An identifier for the image"},
        "name": {"type": ["null", "string"], "maxLength": 255, "description": "Descriptive name for the image"},
        "status": {"type": "string", "readOnly": true, "description": "Status of the image",
                   "enum": ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"]},
        "visibility": {"type": "string", "enum": ["community", "public", "private", "shared"], "description": "Scope of image accessibility"},
        "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
        "checksum": {"type": ["null", "string"], "readOnly": true, "maxLength": 32, "description": "md5 hash of image contents."},
        "os_hash_algo": {"type": ["null", "string"], "readOnly": true, "maxLength": 64, "description": "Algorithm to calculate the os_hash_value"},
        "os_hash_value": {"type": ["null", "string"], "readOnly": true, "maxLength": 128, "description": "Hexdigest of the image contents"},
        "owner": {"type": ["null", "string"], "maxLength": 255, "description": "Owner of the image"},
        "size": {"type": ["null", "integer"], "readOnly": true, "description": "Size of image file in bytes"},
        "virtual_size": {"type": ["null", "integer"], "readOnly": true, "description": "Virtual size of image in bytes"},
        "container_format": nullable_enum(CONTAINER_FORMATS),
        "disk_format": nullable_enum(DISK_FORMATS),
        "created_at": ro_str("Date and time of image registration"),
        "updated_at": ro_str("Date and time of the last image modification"),
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}, "description": "List of strings related to the image"},
        "direct_url": ro_str("URL to access the image file kept in external store"),
        "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
        "self": ro_str("An image self url"),
        "file": ro_str("An image file url"),
        "stores": ro_str("Store in which image data resides.  Only present when the operator has enabled multiple stores."),
        "schema": ro_str("An image schema url"),
        "locations": {"type": "array", "items": {"type": "object", "properties": {
            "url": {"type": "string", "maxLength": 255}, "metadata": {"type": "object"}},
            "required": ["url", "metadata"]}, "description": "A set of URLs to access the image file kept in external store"},
        "kernel_id": {"type": ["null", "string"], "pattern": UUID_PATTERN, "is_base": false,
                      "description": "ID of image stored in Glance that should be used as the kernel when booting an AMI-style image."},
        "ramdisk_id": {"type": ["null", "string"], "pattern": UUID_PATTERN, "is_base": false,
                       "description": "ID of image stored in Glance that should be used as the ramdisk when booting an AMI-style image."},
        "instance_uuid": {"type": "string", "is_base": false, "description": "Metadata which can be used to record which instance this image is associated with."},
        "architecture": {"type": "string", "is_base": false, "description": "Operating system architecture as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"},
        "os_distro": {"type": "string", "is_base": false, "description": "Common name of operating system distribution as specified in https://docs.openstack.org/python-glanceclient/latest/cli/property-keys.html"},
        "os_version": {"type": "string", "is_base": false, "description": "Operating system version as specified by the distributor."},
        "description": {"type": "string", "is_base": false, "description": "A human-readable string describing this image."},
        "cinder_encryption_key_id": {"type": "string", "is_base": false, "description": "Identifier in the OpenStack Key Management Service for the encryption key for the Block Storage Service to use when mounting a volume created from this image"},
        "cinder_encryption_key_deletion_policy": {"type": "string", "enum": ["on_image_deletion", "do_not_delete"], "is_base": false,
            "description": "States the condition under which the Image Service will delete the object associated with the 'cinder_encryption_key_id' image property."},
    })
}

fn image_schema() -> Value {
    json!({
        "name": "image",
        "properties": image_properties(),
        "additionalProperties": {"type": "string"},
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "enclosure", "href": "{file}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}

pub fn image() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(image_schema)
}

fn images() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| {
        json!({
            "name": "images",
            "properties": {
                "images": {"type": "array", "items": image_schema()},
                "schema": {"type": "string"},
                "first": {"type": "string"},
                "next": {"type": "string"},
            },
            "links": [
                {"rel": "first", "href": "{first}"},
                {"rel": "next", "href": "{next}"},
                {"rel": "describedby", "href": "{schema}"},
            ],
        })
    })
}

fn member_properties() -> Value {
    json!({
        "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
        "image_id": {"type": "string", "pattern": UUID_PATTERN, "description": "An identifier for the image"},
        "created_at": {"type": "string", "description": "Date and time of image member creation"},
        "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
        "status": {"type": "string", "enum": ["pending", "accepted", "rejected"], "description": "The status of this image member"},
        "schema": {"type": "string", "readOnly": true},
    })
}

fn member() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| json!({"name": "member", "properties": member_properties()}))
}

fn members() -> &'static Value {
    static S: OnceLock<Value> = OnceLock::new();
    S.get_or_init(|| {
        json!({
            "name": "members",
            "properties": {
                "members": {"type": "array", "items": {"name": "member", "properties": member_properties()}},
                "schema": {"type": "string"},
            },
            "links": [{"rel": "describedby", "href": "{schema}"}],
        })
    })
}
