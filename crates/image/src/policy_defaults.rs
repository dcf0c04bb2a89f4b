//! Glance's default policy rules (oslo.policy syntax) with the secure-RBAC defaults that apply
//! since 2023.2 (`enforce_new_defaults = True`): `glance/policies/{base,image}.py`.
//!
//! Targets: `project_id` is the image's owner, `member_id` the caller's project when it is a
//! member of the image (in any member status), `visibility` the image's visibility. For
//! `get_images` and `add_image` the target's `project_id` is the caller's project and the new
//! image's owner respectively.

macro_rules! rules {
    ($($name:literal => $check:expr,)*) => {
        /// (rule name, check string)
        pub const DEFAULT_RULES: &[(&str, &str)] = &[$(($name, $check)),*];
    };
}

macro_rules! or_admin {
    ($s:literal) => {
        concat!("rule:context_is_admin or (", $s, ")")
    };
}

rules! {
    "context_is_admin" => "role:admin",
    "default" => "rule:context_is_admin",
    "add_image" => or_admin!("role:member and project_id:%(project_id)s"),
    "delete_image" => or_admin!("role:member and project_id:%(project_id)s"),
    "get_image" => or_admin!("role:reader and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s)"),
    "get_images" => or_admin!("role:reader and project_id:%(project_id)s"),
    "modify_image" => or_admin!("role:member and project_id:%(project_id)s"),
    "publicize_image" => "rule:context_is_admin",
    "communitize_image" => or_admin!("role:member and project_id:%(project_id)s"),
    "download_image" => or_admin!("role:member and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s)"),
    "upload_image" => or_admin!("role:member and project_id:%(project_id)s"),
    "import_image" => or_admin!("role:member and project_id:%(project_id)s"),
    "deactivate" => or_admin!("role:member and project_id:%(project_id)s"),
    "reactivate" => or_admin!("role:member and project_id:%(project_id)s"),
    "add_member" => or_admin!("role:member and project_id:%(project_id)s"),
    "delete_member" => or_admin!("role:member and project_id:%(project_id)s"),
    "get_member" => or_admin!("role:reader and (project_id:%(project_id)s or project_id:%(member_id)s)"),
    "get_members" => or_admin!("role:reader and (project_id:%(project_id)s or project_id:%(member_id)s)"),
    "modify_member" => or_admin!("role:member and project_id:%(member_id)s"),
}
