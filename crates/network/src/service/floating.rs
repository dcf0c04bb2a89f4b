//! Floating IPs' rules that other resources' changes call inside their own write.

use crate::model::FloatingIp;
use crate::service::{Error, Txn};

/// Floating IPs pointing at `port_id` let go of it (the port is going away), and their port
/// forwardings to it go.
pub fn disassociate_port(t: &mut Txn, port_id: &str) -> Result<(), Error> {
    let held: Vec<FloatingIp> = t
        .m
        .floatingips
        .values()
        .filter(|f| {
            f.port_id.as_deref() == Some(port_id) || f.port_forwardings.iter().any(|p| p.internal_port_id == port_id)
        })
        .map(|f| (**f).clone())
        .collect();
    for mut f in held {
        if f.port_id.as_deref() == Some(port_id) {
            f.port_id = None;
            f.fixed_ip_address = None;
            f.router_id = None;
        }
        f.port_forwardings.retain(|p| p.internal_port_id != port_id);
        if f.port_id.is_none() && f.port_forwardings.is_empty() {
            f.router_id = None;
        }
        f.std.touch();
        t.put(f)?;
    }
    Ok(())
}
