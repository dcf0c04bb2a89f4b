"""Tokens survive the server: a restart (clean or killed) keeps issued tokens valid and revoked
ones revoked, and `haneul token-keys rotate` on a running server breaks no token."""
import os
import subprocess

import pytest

from support import Api, log_tail, wait_for

STOPS = {"sigterm": False, "sigkill": True}


def restart(srv, kill):
    srv.stop(kill=kill)
    srv.start()


@pytest.mark.parametrize("how", STOPS)
def test_token_issued_before_restart_still_validates(fresh_server, how):
    api = Api(fresh_server)
    token = api.issue("admin", project_name="admin")
    assert api.validate_status(token, token=token) == 200
    restart(fresh_server, STOPS[how])
    assert api.validate_status(token, token=token) == 200
    assert api.get("/auth/projects", token=token).status_code == 200


@pytest.mark.parametrize("how", STOPS)
def test_revoked_token_stays_revoked_after_restart(fresh_server, how):
    api = Api(fresh_server)
    keeper = api.issue("admin", project_name="admin")
    victim = api.issue("admin", project_name="admin")
    r = api.request("DELETE", "/auth/tokens", keeper, headers={"X-Subject-Token": victim})
    assert r.status_code == 204, r.text
    assert api.validate_status(victim, token=keeper) == 404
    restart(fresh_server, STOPS[how])
    assert api.validate_status(victim, token=keeper) == 404
    assert api.get("/auth/projects", token=victim).status_code == 401
    assert api.validate_status(keeper, token=keeper) == 200


def test_token_keys_rotate_on_a_running_server_keeps_old_tokens_and_issues_new_ones(fresh_server):
    srv = fresh_server
    api = Api(srv)
    old = api.issue("admin", project_name="admin")
    keys_dir = os.path.join(srv.data_dir, "fernet-keys")
    keys_before = sorted(os.listdir(keys_dir))

    env = dict(srv.env, HANEUL_DATA_DIR=srv.data_dir)
    rotated = subprocess.run([srv.binary, "token-keys", "rotate"], env=env, capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, f"rotate failed: {rotated.stdout}\n{rotated.stderr}"
    assert sorted(os.listdir(keys_dir)) != keys_before, "rotate did not change the key repository"

    # The server looks at the key repository every second and logs when it picked up a change.
    wait_for(lambda: "token keys reloaded" in log_tail(srv, 200), 10, 0.1,
             what=f"the server to reload its token keys; log:\n{log_tail(srv)}")

    new = api.issue("admin", project_name="admin")
    assert new != old
    assert api.validate_status(old, token=new) == 200
    assert api.validate_status(new, token=old) == 200
    assert srv.proc.poll() is None
