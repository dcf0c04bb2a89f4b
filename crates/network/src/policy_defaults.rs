//! The network service's default policy for attribute-level rules (oslo.policy syntax), as
//! Neutron's defaults: provider attributes, sharing, external networks and port bindings are
//! for administrators. Ownership (a project acts on its own resources) is checked in code.
//! Override per rule in `network-policy.yaml`.

const ADMIN: &str = "role:admin";

/// (rule name, check string)
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("context_is_admin", ADMIN),
    ("create_network:shared", ADMIN),
    ("create_network:router:external", ADMIN),
    ("create_network:provider:network_type", ADMIN),
    ("create_network:provider:physical_network", ADMIN),
    ("create_network:provider:segmentation_id", ADMIN),
    ("update_network:shared", ADMIN),
    ("update_network:router:external", ADMIN),
    ("create_port:binding:host_id", ADMIN),
    ("create_port:binding:profile", ADMIN),
    ("update_port:binding:host_id", ADMIN),
    ("update_port:binding:profile", ADMIN),
    ("update_port:mac_address", ADMIN),
    ("create_subnetpool:shared", ADMIN),
    ("create_subnetpool:is_default", ADMIN),
    ("update_subnetpool:is_default", ADMIN),
    ("create_router:external_gateway_info:enable_snat", ADMIN),
    ("create_router:external_gateway_info:external_fixed_ips", ADMIN),
    ("update_router:external_gateway_info:enable_snat", ADMIN),
    ("update_router:external_gateway_info:external_fixed_ips", ADMIN),
    ("create_router:distributed", ADMIN),
    ("create_router:ha", ADMIN),
    ("update_router:distributed", ADMIN),
    ("update_router:ha", ADMIN),
];
