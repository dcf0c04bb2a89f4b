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
