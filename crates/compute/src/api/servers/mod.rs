//! Servers: the routes and their rules here; `view` (list, show, addresses), `create`
//! (`POST /servers`), `actions` (update, delete and `POST /servers/{id}/action`) and `common`
//! (what they share: lookups, states, arguments).

mod actions;
mod common;
mod create;
mod view;

use haneul_core::routes::{rule, target, Access, Routes};

use super::Ctx;
use actions::*;
use create::*;
use view::*;

pub(super) use common::{check_state, find};

/// The server actions served, each with Nova's rule (`POST /servers/{id}/action`).
pub const ACTIONS: &[(&str, &str)] = &[
    ("os-getConsoleOutput", "os_compute_api:os-console-output"),
    ("os-getVNCConsole", "os_compute_api:os-remote-consoles"),
    ("lock", "os_compute_api:os-lock-server:lock"),
    ("unlock", "os_compute_api:os-lock-server:unlock"),
    ("addSecurityGroup", "os_compute_api:os-security-groups:add"),
    ("removeSecurityGroup", "os_compute_api:os-security-groups:remove"),
    ("addFloatingIp", "os_compute_api:os-floating-ips:add"),
    ("removeFloatingIp", "os_compute_api:os-floating-ips:remove"),
    ("addFixedIp", "os_compute_api:os-multinic:add"),
    ("removeFixedIp", "os_compute_api:os-multinic:remove"),
    ("createImage", "os_compute_api:servers:create_image"),
    ("createBackup", "os_compute_api:os-create-backup"),
    ("rebuild", "os_compute_api:servers:rebuild"),
    ("resize", "os_compute_api:servers:resize"),
    ("confirmResize", "os_compute_api:servers:confirm_resize"),
    ("revertResize", "os_compute_api:servers:revert_resize"),
    ("rescue", "os_compute_api:os-rescue"),
    ("unrescue", "os_compute_api:os-unrescue"),
    ("os-stop", "os_compute_api:servers:stop"),
    ("os-start", "os_compute_api:servers:start"),
    ("reboot", "os_compute_api:servers:reboot"),
    ("pause", "os_compute_api:os-pause-server:pause"),
    ("unpause", "os_compute_api:os-pause-server:unpause"),
    ("suspend", "os_compute_api:os-suspend-server:suspend"),
    ("resume", "os_compute_api:os-suspend-server:resume"),
    // Nova's other actions, with its rules: not built here, so after the server is found
    // they answer 400 "not available yet" (and 404 for a server that is not there, as Nova).
    ("restore", "os_compute_api:os-deferred-delete:restore"),
    ("forceDelete", "os_compute_api:os-deferred-delete:force"),
    ("os-resetState", "os_compute_api:os-admin-actions:reset_state"),
    ("injectNetworkInfo", "os_compute_api:os-admin-actions:inject_network_info"),
    ("changePassword", "os_compute_api:os-admin-password"),
    ("shelve", "os_compute_api:os-shelve:shelve"),
    ("unshelve", "os_compute_api:os-shelve:unshelve"),
    ("shelveOffload", "os_compute_api:os-shelve:shelve_offload"),
    ("migrate", "os_compute_api:os-migrate-server:migrate"),
    ("os-migrateLive", "os_compute_api:os-migrate-server:migrate_live"),
    ("evacuate", "os_compute_api:os-evacuate"),
    ("trigger_crash_dump", "os_compute_api:servers:trigger_crash_dump"),
    ("os-getSerialConsole", "os_compute_api:os-remote-consoles"),
    ("os-getSPICEConsole", "os_compute_api:os-remote-consoles"),
    ("os-getRDPConsole", "os_compute_api:os-remote-consoles"),
];

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/servers", rule("os_compute_api:servers:index"), list)
        .post("/servers", rule("os_compute_api:servers:create"), create)
        .get("/servers/detail", rule("os_compute_api:servers:detail"), list_detail)
        .get("/servers/{id}", rule("os_compute_api:servers:show"), show)
        .put("/servers/{id}", target("os_compute_api:servers:update"), update)
        .delete("/servers/{id}", rule("os_compute_api:servers:delete"), delete)
        .post("/servers/{id}/action", Access::Actions(ACTIONS), action)
        .get("/servers/{id}/ips", rule("os_compute_api:ips:index"), ips)
        .get("/servers/{id}/ips/{network}", rule("os_compute_api:ips:show"), ips_of_network)
        .get("/servers/{id}/os-server-password", target("os_compute_api:os-server-password:show"), show_password)
        .delete("/servers/{id}/os-server-password", target("os_compute_api:os-server-password:clear"), clear_password)
}
