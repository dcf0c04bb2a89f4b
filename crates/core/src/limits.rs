//! Quota limits as services read them: Keystone's unified limits, looked up by service type,
//! project and resource name.

/// Where a service finds the limits it enforces.
pub trait LimitSource: Send + Sync + 'static {
    /// The limit on `resource` for `project_id` in the service of type `service_type`: the
    /// project's own limit, else the registered default; `None` when neither exists.
    fn limit(&self, service_type: &str, project_id: &str, resource: &str) -> Option<i64>;
}

/// No limits at all (tests, and services run without identity).
pub struct Unlimited;

impl LimitSource for Unlimited {
    fn limit(&self, _: &str, _: &str, _: &str) -> Option<i64> {
        None
    }
}
