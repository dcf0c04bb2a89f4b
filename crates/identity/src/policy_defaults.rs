//! Keystone's default policy rules (oslo.policy syntax), as of keystone
//! 28.0.2 (2025.2 "Flamingo" stable; the policy files are identical in
//! 29.0.2 / 2026.1 and on master): `keystone/common/policies/*.py`.
//!
//! Each check string is the rule's *new* default `check_str` (what applies
//! with `[oslo_policy] enforce_new_defaults = True`); deprecated rules that
//! keystone would OR in when `enforce_new_defaults = False` are not included.
//! Keystone folds `rule:admin_required` into most defaults so that
//! project-scoped admins keep working; that is reproduced verbatim.
//!
//! Notes for the evaluator:
//! * An empty check string always passes (oslo.policy `TrueCheck`).
//! * `%(...)s` on the right side is substituted from the flattened target
//!   dict (URL view args at top level, e.g. `%(user_id)s`, plus `target.*`).
//!   The left side is looked up in the credentials (dotted paths such as
//!   `token.domain.id` walk into the rendered token).
//! * A quoted or literal left side (`'manager':...`, `None:...`) is compared
//!   as a literal against the substituted value; a Python `None` target
//!   value renders as the string `None`.
//! * The 28.0.2 security fixes are included: `create_trust` uses
//!   `%(target.trust.trustor_user_id)s` (was the top-level request-body key
//!   `%(trust.trustor_user_id)s`), project rules guard the domain match with
//!   `not None:%(target.project.domain_id)s`, EC2 credential create/delete
//!   require `role:member`, and `ec2tokens_validate` / `s3tokens_validate`
//!   are restricted to `rule:service_or_admin`.

/// (rule name, check string)
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    // Base / alias rules (keystone/common/policies/base.py)
    ("admin_required", "role:admin or is_admin:1"),
    ("service_role", "role:service"),
    ("service_or_admin", "rule:admin_required or rule:service_role"),
    ("owner", "user_id:%(user_id)s"),
    ("admin_or_owner", "rule:admin_required or rule:owner"),
    ("token_subject", "user_id:%(target.token.user_id)s"),
    ("admin_or_token_subject", "rule:admin_required or rule:token_subject"),
    ("service_admin_or_token_subject", "rule:service_or_admin or rule:token_subject"),
    ("domain_managed_target_role", "'manager':%(target.role.name)s or 'member':%(target.role.name)s or 'reader':%(target.role.name)s"),

    // Users: /v3/users (list_projects_for_user / list_domains_for_user are
    // documented against /v3/auth/projects and /v3/auth/domains; empty = allow)
    ("identity:get_user", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and token.domain.id:%(target.user.domain_id)s) or user_id:%(target.user.id)s"),
    ("identity:list_users", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain_id)s)"),
    ("identity:list_projects_for_user", ""),
    ("identity:list_domains_for_user", ""),
    ("identity:create_user", "(rule:admin_required) or (role:manager and token.domain.id:%(target.user.domain_id)s)"),
    ("identity:update_user", "(rule:admin_required) or (role:manager and token.domain.id:%(target.user.domain_id)s)"),
    ("identity:delete_user", "(rule:admin_required) or (role:manager and token.domain.id:%(target.user.domain_id)s)"),

    // Groups and group membership: /v3/groups, /v3/groups/{group_id}/users, /v3/users/{user_id}/groups
    ("identity:get_group", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.group.domain_id)s)"),
    ("identity:list_groups", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.group.domain_id)s)"),
    ("identity:list_groups_for_user", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.user.domain_id)s) or user_id:%(user_id)s"),
    ("identity:create_group", "(rule:admin_required) or (role:manager and domain_id:%(target.group.domain_id)s)"),
    ("identity:update_group", "(rule:admin_required) or (role:manager and domain_id:%(target.group.domain_id)s)"),
    ("identity:delete_group", "(rule:admin_required) or (role:manager and domain_id:%(target.group.domain_id)s)"),
    ("identity:list_users_in_group", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.group.domain_id)s)"),
    ("identity:remove_user_from_group", "(rule:admin_required) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.user.domain_id)s)"),
    ("identity:check_user_in_group", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.group.domain_id)s and domain_id:%(target.user.domain_id)s)"),
    ("identity:add_user_to_group", "(rule:admin_required) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.user.domain_id)s)"),

    // Projects: /v3/projects, /v3/users/{user_id}/projects
    ("identity:get_project", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s) or project_id:%(target.project.id)s"),
    ("identity:list_projects", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain_id)s)"),
    ("identity:list_user_projects", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.user.domain_id)s) or user_id:%(target.user.id)s"),
    ("identity:create_project", "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)"),
    ("identity:update_project", "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)"),
    ("identity:delete_project", "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)"),

    // Project tags: /v3/projects/{project_id}/tags
    ("identity:list_project_tags", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s) or project_id:%(target.project.id)s"),
    ("identity:get_project_tag", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s) or project_id:%(target.project.id)s"),
    ("identity:update_project_tags", "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)"),
    ("identity:create_project_tag", "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)"),
    ("identity:delete_project_tags", "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)"),
    ("identity:delete_project_tag", "(rule:admin_required) or (role:manager and domain_id:%(target.project.domain_id)s and not None:%(target.project.domain_id)s)"),

    // Domains: /v3/domains
    ("identity:get_domain", "rule:admin_required or (role:reader and system_scope:all) or token.domain.id:%(target.domain.id)s or token.project.domain.id:%(target.domain.id)s"),
    ("identity:list_domains", "rule:admin_required or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain.id)s)"),
    ("identity:create_domain", "rule:admin_required"),
    ("identity:update_domain", "rule:admin_required"),
    ("identity:delete_domain", "rule:admin_required"),

    // Roles (global): /v3/roles
    ("identity:get_role", "(rule:admin_required or (role:reader and system_scope:all)) or (role:manager and rule:domain_managed_target_role)"),
    ("identity:list_roles", "(rule:admin_required or (role:reader and system_scope:all)) or (role:manager and not domain_id:None)"),
    ("identity:create_role", "rule:admin_required"),
    ("identity:update_role", "rule:admin_required"),
    ("identity:delete_role", "rule:admin_required"),

    // Domain-specific roles: /v3/roles?domain_id=..., /v3/roles/{role_id} where role.domain_id is set
    ("identity:get_domain_role", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_domain_roles", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:create_domain_role", "rule:admin_required"),
    ("identity:update_domain_role", "rule:admin_required"),
    ("identity:delete_domain_role", "rule:admin_required"),

    // Implied roles (role inference rules): /v3/roles/{prior_role_id}/implies, /v3/role_inferences
    ("identity:get_implied_role", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_implied_roles", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:create_implied_role", "rule:admin_required"),
    ("identity:delete_implied_role", "rule:admin_required"),
    ("identity:list_role_inference_rules", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:check_implied_role", "rule:admin_required or (role:reader and system_scope:all)"),

    // Role assignments: /v3/role_assignments (incl. ?include_subtree)
    ("identity:list_role_assignments", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain_id)s)"),
    ("identity:list_role_assignments_for_tree", "(rule:admin_required) or (role:reader and system_scope:all) or (role:reader and domain_id:%(target.domain_id)s)"),

    // Grants (project/domain role assignments for users/groups): /v3/{projects,domains}/{id}/{users,groups}/{id}/roles[/{role_id}]
    ("identity:check_grant", "(rule:admin_required) or ((role:reader and system_scope:all) or ((role:reader and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:reader and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:reader and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:reader and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s)) and (domain_id:%(target.role.domain_id)s or None:%(target.role.domain_id)s))"),
    ("identity:list_grants", "(rule:admin_required) or ((role:reader and system_scope:all) or (role:reader and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:reader and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:reader and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:reader and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s))"),
    ("identity:create_grant", "(rule:admin_required) or ((role:admin and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:admin and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:admin and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:admin and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s)) and (domain_id:%(target.role.domain_id)s or None:%(target.role.domain_id)s) or ((role:manager and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:manager and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s)) and rule:domain_managed_target_role"),
    ("identity:revoke_grant", "(rule:admin_required) or ((role:admin and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:admin and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:admin and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:admin and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s)) and (domain_id:%(target.role.domain_id)s or None:%(target.role.domain_id)s) or ((role:manager and domain_id:%(target.user.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:manager and domain_id:%(target.user.domain_id)s and domain_id:%(target.domain.id)s) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.project.domain_id)s) or (role:manager and domain_id:%(target.group.domain_id)s and domain_id:%(target.domain.id)s)) and rule:domain_managed_target_role"),

    // System grants: /v3/system/{users,groups}/{id}/roles[/{role_id}]
    ("identity:list_system_grants_for_user", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:check_system_grant_for_user", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:create_system_grant_for_user", "rule:admin_required"),
    ("identity:revoke_system_grant_for_user", "rule:admin_required"),
    ("identity:list_system_grants_for_group", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:check_system_grant_for_group", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:create_system_grant_for_group", "rule:admin_required"),
    ("identity:revoke_system_grant_for_group", "rule:admin_required"),

    // Credentials: /v3/credentials
    ("identity:get_credential", "(rule:admin_required) or (role:reader and system_scope:all) or user_id:%(target.credential.user_id)s"),
    ("identity:list_credentials", "(rule:admin_required) or (role:reader and system_scope:all) or user_id:%(target.credential.user_id)s"),
    ("identity:create_credential", "(rule:admin_required) or user_id:%(target.credential.user_id)s"),
    ("identity:update_credential", "(rule:admin_required) or user_id:%(target.credential.user_id)s"),
    ("identity:delete_credential", "(rule:admin_required) or user_id:%(target.credential.user_id)s"),

    // EC2 credentials: /v3/users/{user_id}/credentials/OS-EC2
    ("identity:ec2_get_credential", "(rule:admin_required) or (role:reader and system_scope:all) or user_id:%(target.credential.user_id)s"),
    ("identity:ec2_list_credentials", "(rule:admin_required) or (role:reader and system_scope:all) or rule:owner"),
    ("identity:ec2_create_credential", "(rule:admin_required) or (role:member and user_id:%(target.credential.user_id)s)"),
    ("identity:ec2_delete_credential", "(rule:admin_required) or (role:member and user_id:%(target.credential.user_id)s)"),

    // Application credentials: /v3/users/{user_id}/application_credentials
    ("identity:get_application_credential", "(rule:admin_required) or (role:reader and system_scope:all) or rule:owner"),
    ("identity:list_application_credentials", "(rule:admin_required) or (role:reader and system_scope:all) or rule:owner"),
    ("identity:create_application_credential", "user_id:%(user_id)s"),
    ("identity:delete_application_credential", "rule:admin_or_owner"),

    // Access rules (application credentials): /v3/users/{user_id}/access_rules
    ("identity:get_access_rule", "(role:reader and system_scope:all) or user_id:%(target.user.id)s"),
    ("identity:list_access_rules", "(role:reader and system_scope:all) or user_id:%(target.user.id)s"),
    ("identity:delete_access_rule", "(role:admin and system_scope:all) or user_id:%(target.user.id)s"),

    // Trusts (OS-TRUST): /v3/OS-TRUST/trusts
    ("identity:create_trust", "user_id:%(target.trust.trustor_user_id)s"),
    ("identity:list_trusts", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_trusts_for_trustor", "(rule:admin_required) or (role:reader and system_scope:all or user_id:%(target.trust.trustor_user_id)s)"),
    ("identity:list_trusts_for_trustee", "(rule:admin_required) or (role:reader and system_scope:all or user_id:%(target.trust.trustee_user_id)s)"),
    ("identity:list_roles_for_trust", "(rule:admin_required) or (role:reader and system_scope:all or user_id:%(target.trust.trustor_user_id)s or user_id:%(target.trust.trustee_user_id)s)"),
    ("identity:get_role_for_trust", "(rule:admin_required) or (role:reader and system_scope:all or user_id:%(target.trust.trustor_user_id)s or user_id:%(target.trust.trustee_user_id)s)"),
    ("identity:delete_trust", "rule:admin_required or user_id:%(target.trust.trustor_user_id)s"),
    ("identity:get_trust", "(rule:admin_required) or (role:reader and system_scope:all or user_id:%(target.trust.trustor_user_id)s or user_id:%(target.trust.trustee_user_id)s)"),

    // Regions: /v3/regions
    ("identity:get_region", ""),
    ("identity:list_regions", ""),
    ("identity:create_region", "rule:admin_required"),
    ("identity:update_region", "rule:admin_required"),
    ("identity:delete_region", "rule:admin_required"),

    // Services: /v3/services
    ("identity:get_service", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_services", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:create_service", "rule:admin_required"),
    ("identity:update_service", "rule:admin_required"),
    ("identity:delete_service", "rule:admin_required"),

    // Endpoints: /v3/endpoints
    ("identity:get_endpoint", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_endpoints", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:create_endpoint", "rule:admin_required"),
    ("identity:update_endpoint", "rule:admin_required"),
    ("identity:delete_endpoint", "rule:admin_required"),

    // Endpoint groups (OS-EP-FILTER): /v3/OS-EP-FILTER/endpoint_groups, /v3/OS-EP-FILTER/projects/{project_id}/endpoint_groups
    ("identity:create_endpoint_group", "rule:admin_required"),
    ("identity:list_endpoint_groups", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:get_endpoint_group", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:update_endpoint_group", "rule:admin_required"),
    ("identity:delete_endpoint_group", "rule:admin_required"),
    ("identity:list_projects_associated_with_endpoint_group", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_endpoints_associated_with_endpoint_group", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:get_endpoint_group_in_project", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_endpoint_groups_for_project", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:add_endpoint_group_to_project", "rule:admin_required"),
    ("identity:remove_endpoint_group_from_project", "rule:admin_required"),

    // Project endpoints (OS-EP-FILTER): /v3/OS-EP-FILTER/projects/{project_id}/endpoints, /v3/OS-EP-FILTER/endpoints/{endpoint_id}/projects
    ("identity:list_projects_for_endpoint", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:add_endpoint_to_project", "rule:admin_required"),
    ("identity:check_endpoint_in_project", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_endpoints_for_project", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:remove_endpoint_from_project", "rule:admin_required"),

    // Policies: /v3/policies
    ("identity:get_policy", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_policies", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:create_policy", "rule:admin_required"),
    ("identity:update_policy", "rule:admin_required"),
    ("identity:delete_policy", "rule:admin_required"),

    // Policy associations (OS-ENDPOINT-POLICY): /v3/policies/{policy_id}/OS-ENDPOINT-POLICY/..., /v3/endpoints/{endpoint_id}/OS-ENDPOINT-POLICY/policy
    ("identity:create_policy_association_for_endpoint", "rule:admin_required"),
    ("identity:check_policy_association_for_endpoint", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:delete_policy_association_for_endpoint", "rule:admin_required"),
    ("identity:create_policy_association_for_service", "rule:admin_required"),
    ("identity:check_policy_association_for_service", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:delete_policy_association_for_service", "rule:admin_required"),
    ("identity:create_policy_association_for_region_and_service", "rule:admin_required"),
    ("identity:check_policy_association_for_region_and_service", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:delete_policy_association_for_region_and_service", "rule:admin_required"),
    ("identity:get_policy_for_endpoint", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_endpoints_for_policy", "rule:admin_required or (role:reader and system_scope:all)"),

    // Limits (unified limits): /v3/limits, /v3/limits/model
    ("identity:get_limit_model", ""),
    ("identity:get_limit", "rule:admin_required or (role:reader and system_scope:all) or (domain_id:%(target.limit.domain.id)s or domain_id:%(target.limit.project.domain_id)s) or (project_id:%(target.limit.project_id)s and not None:%(target.limit.project_id)s)"),
    ("identity:list_limits", ""),
    ("identity:create_limits", "rule:admin_required"),
    ("identity:update_limit", "rule:admin_required"),
    ("identity:delete_limit", "rule:admin_required"),

    // Registered limits (unified limits): /v3/registered_limits
    ("identity:get_registered_limit", ""),
    ("identity:list_registered_limits", ""),
    ("identity:create_registered_limits", "rule:admin_required"),
    ("identity:update_registered_limit", "rule:admin_required"),
    ("identity:delete_registered_limit", "rule:admin_required"),

    // Domain configuration: /v3/domains/{domain_id}/config, /v3/domains/config/default
    ("identity:create_domain_config", "rule:admin_required"),
    ("identity:get_domain_config", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:get_security_compliance_domain_config", ""),
    ("identity:update_domain_config", "rule:admin_required"),
    ("identity:delete_domain_config", "rule:admin_required"),
    ("identity:get_domain_config_default", "rule:admin_required or (role:reader and system_scope:all)"),

    // Identity providers (OS-FEDERATION): /v3/OS-FEDERATION/identity_providers
    ("identity:create_identity_provider", "rule:admin_required"),
    ("identity:list_identity_providers", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:get_identity_provider", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:update_identity_provider", "rule:admin_required"),
    ("identity:delete_identity_provider", "rule:admin_required"),

    // Mappings (OS-FEDERATION): /v3/OS-FEDERATION/mappings
    ("identity:create_mapping", "rule:admin_required"),
    ("identity:get_mapping", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_mappings", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:delete_mapping", "rule:admin_required"),
    ("identity:update_mapping", "rule:admin_required"),

    // Protocols (OS-FEDERATION): /v3/OS-FEDERATION/identity_providers/{idp_id}/protocols
    ("identity:create_protocol", "rule:admin_required"),
    ("identity:update_protocol", "rule:admin_required"),
    ("identity:get_protocol", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_protocols", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:delete_protocol", "rule:admin_required"),

    // Service providers (OS-FEDERATION): /v3/OS-FEDERATION/service_providers
    ("identity:create_service_provider", "rule:admin_required"),
    ("identity:list_service_providers", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:get_service_provider", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:update_service_provider", "rule:admin_required"),
    ("identity:delete_service_provider", "rule:admin_required"),

    // Revocation events (OS-REVOKE): /v3/OS-REVOKE/events
    ("identity:list_revoke_events", "rule:service_or_admin"),

    // Tokens: /v3/auth/tokens (X-Subject-Token)
    ("identity:check_token", "rule:admin_required or (role:reader and system_scope:all) or rule:token_subject"),
    ("identity:validate_token", "rule:admin_required or (role:reader and system_scope:all) or rule:service_role or rule:token_subject"),
    ("identity:revoke_token", "rule:admin_required or rule:token_subject"),

    // PKI token revocation list (deprecated for removal; keystone's handler is
    // unenforced and answers 410/403): GET /v3/auth/tokens/OS-PKI/revoked
    ("identity:revocation_list", "rule:service_or_admin"),

    // Auth scoping/catalog (empty = any valid token): /v3/auth/catalog,
    // /v3/auth/projects, /v3/auth/domains, /v3/auth/system
    ("identity:get_auth_catalog", ""),
    ("identity:get_auth_projects", ""),
    ("identity:get_auth_domains", ""),
    ("identity:get_auth_system", ""),

    // OAuth1 consumers (OS-OAUTH1): /v3/OS-OAUTH1/consumers
    ("identity:get_consumer", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:list_consumers", "rule:admin_required or (role:reader and system_scope:all)"),
    ("identity:create_consumer", "rule:admin_required"),
    ("identity:update_consumer", "rule:admin_required"),
    ("identity:delete_consumer", "rule:admin_required"),

    // OAuth1 request/access tokens (OS-OAUTH1): /v3/OS-OAUTH1/authorize/{request_token_id}, /v3/users/{user_id}/OS-OAUTH1/access_tokens
    ("identity:authorize_request_token", "rule:admin_required"),
    ("identity:get_access_token", "rule:admin_required"),
    ("identity:get_access_token_role", "rule:admin_required"),
    ("identity:list_access_tokens", "rule:admin_required"),
    ("identity:list_access_token_roles", "rule:admin_required"),
    ("identity:delete_access_token", "rule:admin_required"),

    // EC2 token validation: POST /v3/ec2tokens
    ("identity:ec2tokens_validate", "rule:service_or_admin"),

    // S3 token validation: POST /v3/s3tokens
    ("identity:s3tokens_validate", "rule:service_or_admin"),
];

#[cfg(test)]
mod tests {
    use super::DEFAULT_RULES;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique() {
        let mut seen = HashSet::new();
        for (name, _) in DEFAULT_RULES {
            assert!(seen.insert(*name), "duplicate rule {name}");
        }
    }

    #[test]
    fn parentheses_are_balanced() {
        for (name, check) in DEFAULT_RULES {
            let mut depth = 0i32;
            for c in check.chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                assert!(depth >= 0, "unbalanced parentheses in {name}");
            }
            assert_eq!(depth, 0, "unbalanced parentheses in {name}");
        }
    }

    #[test]
    fn rule_references_resolve() {
        let names: HashSet<&str> = DEFAULT_RULES.iter().map(|(n, _)| *n).collect();
        for (name, check) in DEFAULT_RULES {
            for part in check.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
                if let Some(target) = part.strip_prefix("rule:") {
                    assert!(names.contains(target), "{name} references unknown rule {target}");
                }
            }
        }
    }
}
