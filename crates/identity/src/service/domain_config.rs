//! Domain-specific configuration: the `identity` and `ldap` groups an operator may set per
//! domain, the defaults behind them, and the options never shown back. Every change reads
//! and writes the stored configuration in one write.

use serde_json::{json, Map, Value};

use super::{Error, Result, Txn};
use crate::model::{Document, DomainConfig, Model};

/// A configuration: group → option → value.
pub type Config = Map<String, Value>;

/// Options an operator may set, with Keystone's defaults.
const IDENTITY_DEFAULTS: &[(&str, &str)] = &[("driver", "\"sql\""), ("list_limit", "null")];
const LDAP_DEFAULTS: &[(&str, &str)] = &[
    ("url", "\"ldap://localhost\""),
    ("user", "null"),
    ("suffix", "\"cn=example,cn=com\""),
    ("query_scope", "\"one\""),
    ("page_size", "0"),
    ("alias_dereferencing", "\"default\""),
    ("debug_level", "null"),
    ("chase_referrals", "null"),
    ("user_tree_dn", "null"),
    ("user_filter", "null"),
    ("user_objectclass", "\"inetOrgPerson\""),
    ("user_id_attribute", "\"cn\""),
    ("user_name_attribute", "\"sn\""),
    ("user_description_attribute", "\"description\""),
    ("user_mail_attribute", "\"mail\""),
    ("user_pass_attribute", "\"userPassword\""),
    ("user_enabled_attribute", "\"enabled\""),
    ("user_enabled_invert", "false"),
    ("user_enabled_mask", "0"),
    ("user_enabled_default", "\"True\""),
    ("user_attribute_ignore", "[\"default_project_id\"]"),
    ("user_default_project_id_attribute", "null"),
    ("user_enabled_emulation", "false"),
    ("user_enabled_emulation_dn", "null"),
    ("user_enabled_emulation_use_group_config", "false"),
    ("user_additional_attribute_mapping", "[]"),
    ("group_tree_dn", "null"),
    ("group_filter", "null"),
    ("group_objectclass", "\"groupOfNames\""),
    ("group_id_attribute", "\"cn\""),
    ("group_name_attribute", "\"ou\""),
    ("group_member_attribute", "\"member\""),
    ("group_members_are_ids", "false"),
    ("group_desc_attribute", "\"description\""),
    ("group_attribute_ignore", "[]"),
    ("group_additional_attribute_mapping", "[]"),
    ("tls_cacertfile", "null"),
    ("tls_cacertdir", "null"),
    ("use_tls", "false"),
    ("tls_req_cert", "\"demand\""),
    ("use_pool", "true"),
    ("pool_size", "10"),
    ("pool_retry_max", "3"),
    ("pool_retry_delay", "0.1"),
    ("pool_connection_timeout", "-1"),
    ("pool_connection_lifetime", "600"),
    ("use_auth_pool", "true"),
    ("auth_pool_size", "100"),
    ("auth_pool_connection_lifetime", "60"),
];
/// Accepted but never shown back.
const SENSITIVE: &[(&str, &str)] = &[("ldap", "password")];

/// The defaults of a supported group.
pub fn defaults(group: &str) -> Option<Map<String, Value>> {
    let table = match group {
        "identity" => IDENTITY_DEFAULTS,
        "ldap" => LDAP_DEFAULTS,
        _ => return None,
    };
    Some(table.iter().map(|(k, v)| (k.to_string(), serde_json::from_str(v).unwrap_or(Value::Null))).collect())
}

/// Whether an operator may set `option` of `group`.
pub fn allowed(group: &str, option: &str) -> bool {
    defaults(group).is_some_and(|d| d.contains_key(option)) || SENSITIVE.contains(&(group, option))
}

/// Keystone's refusal of an unsupported group or option.
pub fn unsupported(msg: String) -> Error {
    Error::Forbidden(format!("Invalid domain specific configuration: {msg}"))
}

pub fn unsupported_group(group: &str) -> Error {
    unsupported(format!("group {group} is not supported"))
}

pub fn unsupported_option(group: &str, option: &str) -> Error {
    unsupported(format!("option {option} in group {group} is not supported"))
}

/// Checks a whole configuration (or a patch of one): known groups, known options, each group
/// an object.
pub fn check(config: &Config) -> Result<()> {
    for (group, opts) in config {
        let opts = opts.as_object().ok_or_else(|| {
            Error::validation(format!("Invalid input for field 'config/{group}': must be an object."))
        })?;
        if defaults(group).is_none() {
            return Err(unsupported_group(group));
        }
        for option in opts.keys() {
            if !allowed(group, option) {
                return Err(unsupported_option(group, option));
            }
        }
    }
    Ok(())
}

/// A configuration without its sensitive options.
pub fn visible(config: &Config) -> Config {
    let mut out = config.clone();
    for (group, option) in SENSITIVE {
        if let Some(Value::Object(g)) = out.get_mut(*group) {
            g.remove(*option);
        }
    }
    out
}

/// The stored configuration of an existing domain; not found when it has none.
pub fn stored(m: &Model, id: &str) -> Result<Config> {
    if !m.domains.contains_key(id) {
        return Err(Error::not_found("domain", id));
    }
    m.domain_configs.get(id).map(|d| d.0.body.clone()).ok_or_else(|| Error::not_found("domain config", id))
}

/// A supported group of a configuration; not found when it is not set.
pub fn group_of(config: &Config, id: &str, group: &str) -> Result<Map<String, Value>> {
    if defaults(group).is_none() {
        return Err(unsupported_group(group));
    }
    config
        .get(group)
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| Error::not_found("domain config group", format!("{group} of {id}")))
}

/// Merges `patch` (group → options) into `config`.
fn merge(config: &mut Config, patch: Config) {
    for (group, opts) in patch {
        let entry = config.entry(group).or_insert_with(|| json!({}));
        if let (Value::Object(dst), Value::Object(src)) = (entry, opts) {
            dst.extend(src);
        }
    }
}

/// Stores a domain's configuration; an empty one is deleted.
fn save(t: &mut Txn, id: &str, config: Config) -> Result<()> {
    if !t.m.domains.contains_key(id) {
        return Err(Error::not_found("domain", id));
    }
    if config.is_empty() {
        t.delete::<DomainConfig>(id);
    } else {
        t.put(DomainConfig(Document { id: id.to_string(), uniq: None, body: config }))?;
    }
    Ok(())
}

/// Sets a domain's whole configuration (checked, not empty); whether it replaced one.
pub fn create(t: &mut Txn, id: &str, config: Config) -> Result<bool> {
    let existed = t.m.domain_configs.contains_key(id);
    save(t, id, config)?;
    Ok(existed)
}

/// Merges a (checked) patch into a domain's stored configuration; the result.
pub fn update(t: &mut Txn, id: &str, patch: Config) -> Result<Config> {
    let mut config = stored(&t.m, id)?;
    merge(&mut config, patch);
    save(t, id, config.clone())?;
    Ok(config)
}

/// Deletes a domain's stored configuration.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    stored(&t.m, id)?;
    save(t, id, Config::new())
}

/// Merges a (checked) patch of one group into a domain's configuration, which must set that
/// group already; the result.
pub fn update_group(t: &mut Txn, id: &str, group: &str, patch: Config) -> Result<Config> {
    let mut config = stored(&t.m, id)?;
    group_of(&config, id, group)?;
    merge(&mut config, patch);
    save(t, id, config.clone())?;
    Ok(config)
}

/// Removes a group a domain's configuration sets.
pub fn delete_group(t: &mut Txn, id: &str, group: &str) -> Result<()> {
    let mut config = stored(&t.m, id)?;
    group_of(&config, id, group)?;
    config.remove(group);
    save(t, id, config)
}

/// Removes an option a domain's configuration sets (and its group when it was the last).
pub fn delete_option(t: &mut Txn, id: &str, group: &str, option: &str) -> Result<()> {
    let mut config = stored(&t.m, id)?;
    let mut g = group_of(&config, id, group)?;
    g.remove(option).ok_or_else(|| Error::not_found("domain config option", format!("{group}.{option} of {id}")))?;
    if g.is_empty() {
        config.remove(group);
    } else {
        config.insert(group.to_string(), Value::Object(g));
    }
    save(t, id, config)
}
