//! Placement's default policy (oslo.policy syntax): every call is for administrators and
//! for the services that report and claim resources (`service` role), as placement's own
//! defaults allow. Override per rule in `placement-policy.yaml`.

const ADMIN_OR_SERVICE: &str = "rule:admin_or_service";

/// (rule name, check string)
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("admin_api", "role:admin"),
    ("service_api", "role:service"),
    ("admin_or_service", "rule:admin_api or rule:service_api"),
    ("placement:resource_providers:list", ADMIN_OR_SERVICE),
    ("placement:resource_providers:create", ADMIN_OR_SERVICE),
    ("placement:resource_providers:show", ADMIN_OR_SERVICE),
    ("placement:resource_providers:update", ADMIN_OR_SERVICE),
    ("placement:resource_providers:delete", ADMIN_OR_SERVICE),
    ("placement:resource_providers:inventories:list", ADMIN_OR_SERVICE),
    ("placement:resource_providers:inventories:create", ADMIN_OR_SERVICE),
    ("placement:resource_providers:inventories:show", ADMIN_OR_SERVICE),
    ("placement:resource_providers:inventories:update", ADMIN_OR_SERVICE),
    ("placement:resource_providers:inventories:delete", ADMIN_OR_SERVICE),
    ("placement:resource_providers:aggregates:list", ADMIN_OR_SERVICE),
    ("placement:resource_providers:aggregates:update", ADMIN_OR_SERVICE),
    ("placement:resource_providers:usages", ADMIN_OR_SERVICE),
    ("placement:usages", ADMIN_OR_SERVICE),
    ("placement:resource_providers:traits:list", ADMIN_OR_SERVICE),
    ("placement:resource_providers:traits:update", ADMIN_OR_SERVICE),
    ("placement:resource_providers:traits:delete", ADMIN_OR_SERVICE),
    ("placement:resource_providers:allocations:list", ADMIN_OR_SERVICE),
    ("placement:resource_classes:list", ADMIN_OR_SERVICE),
    ("placement:resource_classes:create", ADMIN_OR_SERVICE),
    ("placement:resource_classes:show", ADMIN_OR_SERVICE),
    ("placement:resource_classes:update", ADMIN_OR_SERVICE),
    ("placement:resource_classes:delete", ADMIN_OR_SERVICE),
    ("placement:traits:list", ADMIN_OR_SERVICE),
    ("placement:traits:show", ADMIN_OR_SERVICE),
    ("placement:traits:update", ADMIN_OR_SERVICE),
    ("placement:traits:delete", ADMIN_OR_SERVICE),
    ("placement:allocations:list", ADMIN_OR_SERVICE),
    ("placement:allocations:manage", ADMIN_OR_SERVICE),
    ("placement:allocations:update", ADMIN_OR_SERVICE),
    ("placement:allocations:delete", ADMIN_OR_SERVICE),
    ("placement:allocation_candidates:list", ADMIN_OR_SERVICE),
    ("placement:reshaper:reshape", ADMIN_OR_SERVICE),
];
