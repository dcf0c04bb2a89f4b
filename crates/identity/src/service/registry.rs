//! Records with little behaviour of their own, stored as documents: policies, OAuth1
//! consumers, endpoint groups, federation identity providers (with their protocols), mappings
//! and service providers. What behaviour they have is here: an identity provider's domain,
//! and what goes with a deleted endpoint group or identity provider.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{new_id, Error, Result, Txn};
use crate::model::{
    DocRecord, Document, Domain, EndpointGroup, Extra, FederationProtocol, IdentityProvider, ProjectEndpoint, Record,
};

/// Stores a new record of kind `T` (called `kind` in messages) under a free id. An identity
/// provider's users live in a domain of its own unless it names an existing one.
pub fn create<T: DocRecord>(t: &mut Txn, kind: &'static str, mut doc: Document) -> Result<Arc<T>> {
    if T::table(&t.m).contains_key(&doc.id) {
        return Err(Error::Conflict(format!(
            "Conflict occurred attempting to store {kind} - Duplicate ID, {}.",
            doc.id
        )));
    }
    if T::TABLE == IdentityProvider::TABLE {
        match doc.body.get("domain_id").and_then(Value::as_str).map(str::to_string) {
            Some(d) if !t.m.domains.contains_key(&d) => {
                return Err(Error::validation(format!("Could not find domain: {d}.")))
            }
            Some(_) => {}
            None => {
                let domain = Domain {
                    id: new_id(),
                    name: doc.id.clone(),
                    description: format!("Auto generated federated domain for Identity Provider: {}", doc.id),
                    enabled: true,
                    tags: vec![],
                    options: Default::default(),
                    extra: Default::default(),
                };
                doc.body.insert("domain_id".into(), json!(domain.id));
                t.put(domain)?;
            }
        }
    }
    Ok(t.put(T::from_doc(doc))?)
}

/// Merges `patch` (validated) into a record of kind `T`.
pub fn update<T: DocRecord>(t: &mut Txn, kind: &'static str, id: &str, patch: Extra) -> Result<Arc<T>> {
    let mut d = T::table(&t.m).get(id).ok_or_else(|| Error::not_found(kind, id))?.doc().clone();
    d.body.extend(patch);
    Ok(t.put(T::from_doc(d))?)
}

/// Deletes a record of kind `T`; an endpoint group's project associations and an identity
/// provider's protocols go with it.
pub fn delete<T: DocRecord>(t: &mut Txn, kind: &'static str, id: &str) -> Result<()> {
    t.delete::<T>(id).ok_or_else(|| Error::not_found(kind, id))?;
    let names = |d: &Document, k: &str| d.body.get(k).and_then(Value::as_str) == Some(id);
    if T::TABLE == EndpointGroup::TABLE {
        t.delete_where::<ProjectEndpoint>(|pe| names(&pe.0, "endpoint_group_id"));
    } else if T::TABLE == IdentityProvider::TABLE {
        t.delete_where::<FederationProtocol>(|p| names(&p.0, "idp_id"));
    }
    Ok(())
}

// ------------------------------------------------------------------------------- protocols

/// The id of protocol `id` of identity provider `idp`.
pub fn protocol_id(idp: &str, id: &str) -> String {
    format!("{idp}/{id}")
}

/// A federation protocol's attributes; `None` leaves (or, on create, omits) one.
#[derive(Default)]
pub struct ProtocolAttrs {
    pub mapping_id: Option<String>,
    /// `Some(None)` is null.
    pub remote_id_attribute: Option<Option<String>>,
}

impl ProtocolAttrs {
    fn into_body(self) -> Extra {
        let mut out = Extra::new();
        if let Some(m) = self.mapping_id {
            out.insert("mapping_id".into(), json!(m));
        }
        if let Some(r) = self.remote_id_attribute {
            out.insert("remote_id_attribute".into(), json!(r));
        }
        out
    }
}

fn no_mapping(m: &str) -> Error {
    Error::validation(format!("Could not find mapping: {m}."))
}

/// Stores protocol `id` of an existing identity provider, with an existing mapping.
pub fn create_protocol(t: &mut Txn, idp: &str, id: &str, attrs: ProtocolAttrs) -> Result<Arc<FederationProtocol>> {
    if !t.m.identity_providers.contains_key(idp) {
        return Err(Error::not_found("identity provider", idp));
    }
    let mapping = attrs.mapping_id.clone().unwrap_or_default();
    if !t.m.mappings.contains_key(&mapping) {
        return Err(no_mapping(&mapping));
    }
    let doc_id = protocol_id(idp, id);
    if t.m.federation_protocols.contains_key(&doc_id) {
        return Err(Error::Conflict(format!(
            "Conflict occurred attempting to store federation_protocol - Duplicate ID, {id}."
        )));
    }
    let mut body = attrs.into_body();
    body.insert("idp_id".into(), json!(idp));
    body.insert("protocol_id".into(), json!(id));
    Ok(t.put(FederationProtocol(Document { id: doc_id, uniq: None, body }))?)
}

/// Changes a protocol's mapping (to an existing one) or remote id attribute.
pub fn update_protocol(t: &mut Txn, idp: &str, id: &str, attrs: ProtocolAttrs) -> Result<Arc<FederationProtocol>> {
    let mut d =
        t.m.federation_protocols
            .get(&protocol_id(idp, id))
            .ok_or_else(|| Error::not_found("federation protocol", id))?
            .0
            .clone();
    if let Some(m) = attrs.mapping_id.as_deref().filter(|m| !t.m.mappings.contains_key(*m)) {
        return Err(no_mapping(m));
    }
    d.body.extend(attrs.into_body());
    Ok(t.put(FederationProtocol(d))?)
}

pub fn delete_protocol(t: &mut Txn, idp: &str, id: &str) -> Result<()> {
    t.delete::<FederationProtocol>(&protocol_id(idp, id)).ok_or_else(|| Error::not_found("federation protocol", id))?;
    Ok(())
}
