//! Nova's default policy rules (oslo.policy syntax) for the parts of the compute API served so
//! far, with the secure-RBAC defaults (`nova/policies/{base,flavor_*,keypairs}.py`). Targets:
//! `project_id` is the caller's project for flavor rules, `user_id` the key pair's owner.

/// (rule name, check string)
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("context_is_admin", "role:admin"),
    ("admin_api", "rule:context_is_admin"),
    ("project_member_api", "role:member and project_id:%(project_id)s"),
    ("project_reader_api", "role:reader and project_id:%(project_id)s"),
    ("project_member_or_admin", "rule:project_member_api or rule:context_is_admin"),
    ("project_reader_or_admin", "rule:project_reader_api or rule:context_is_admin"),
    ("os_compute_api:os-flavor-manage:create", "rule:context_is_admin"),
    ("os_compute_api:os-flavor-manage:update", "rule:context_is_admin"),
    ("os_compute_api:os-flavor-manage:delete", "rule:context_is_admin"),
    ("os_compute_api:os-flavor-extra-specs:index", "rule:project_reader_or_admin"),
    ("os_compute_api:os-flavor-extra-specs:show", "rule:project_reader_or_admin"),
    ("os_compute_api:os-flavor-extra-specs:create", "rule:context_is_admin"),
    ("os_compute_api:os-flavor-extra-specs:update", "rule:context_is_admin"),
    ("os_compute_api:os-flavor-extra-specs:delete", "rule:context_is_admin"),
    ("os_compute_api:os-flavor-access", "rule:context_is_admin"),
    ("os_compute_api:os-flavor-access:add_tenant_access", "rule:context_is_admin"),
    ("os_compute_api:os-flavor-access:remove_tenant_access", "rule:context_is_admin"),
    ("os_compute_api:os-keypairs:index", "(rule:context_is_admin) or user_id:%(user_id)s"),
    ("os_compute_api:os-keypairs:show", "(rule:context_is_admin) or user_id:%(user_id)s"),
    ("os_compute_api:os-keypairs:create", "(rule:context_is_admin) or user_id:%(user_id)s"),
    ("os_compute_api:os-keypairs:delete", "(rule:context_is_admin) or user_id:%(user_id)s"),
    ("os_compute_api:os-quota-sets:show", "rule:project_reader_or_admin"),
    ("os_compute_api:os-quota-sets:detail", "rule:project_reader_or_admin"),
    ("os_compute_api:os-quota-sets:defaults", "@"),
    ("os_compute_api:os-quota-sets:update", "rule:context_is_admin"),
    ("os_compute_api:os-quota-sets:delete", "rule:context_is_admin"),
    ("os_compute_api:os-quota-class-sets:show", "rule:context_is_admin or quota_class:%(quota_class)s"),
    ("os_compute_api:os-quota-class-sets:update", "rule:context_is_admin"),
    ("os_compute_api:limits", "@"),
    ("os_compute_api:limits:other_project", "rule:context_is_admin"),
];
