"""An oslo.policy `policy.yaml` in the data directory overrides the default rules while the
server runs: it is re-read within about a second of its mtime changing, and deleting it brings
the defaults back. These tests use a server of their own so a leftover override cannot leak."""
import os

import pytest

from support import Api, wait_for

RELOAD_TIMEOUT = 10


@pytest.fixture(scope="module")
def setup(module_server):
    api = Api(module_server)
    project = api.new_project()
    user, password = api.new_user("member", project_id=project["id"])
    return {
        "srv": module_server,
        "api": api,
        "member_token": api.issue(user["name"], password, project_id=project["id"]),
        "pid": module_server.proc.pid,
    }


@pytest.fixture
def policy_path(setup):
    path = os.path.join(setup["srv"].data_dir, "policy.yaml")
    yield path
    # Leave the defaults in force for the next test, whatever happened in this one.
    if os.path.exists(path):
        os.remove(path)
        api = setup["api"]
        wait_for(lambda: list_users_status(setup, setup["member_token"]) == 403
                 and list_users_status(setup, api.admin_token) == 200,
                 RELOAD_TIMEOUT, what="the defaults after removing policy.yaml")


def write_policy(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def list_users_status(setup, token):
    return setup["api"].get("/users", token=token).status_code


def assert_not_restarted(setup):
    srv = setup["srv"]
    assert srv.proc.poll() is None and srv.proc.pid == setup["pid"], "the server restarted or died"


def test_policy_yaml_override_lets_member_list_users_without_restart(setup, policy_path):
    member = setup["member_token"]
    assert list_users_status(setup, member) == 403
    write_policy(policy_path, '"identity:list_users": "role:member"\n')
    wait_for(lambda: list_users_status(setup, member) == 200, RELOAD_TIMEOUT,
             what="member to be allowed to list users after writing policy.yaml")
    assert_not_restarted(setup)


def test_removing_policy_yaml_restores_default_rules(setup, policy_path):
    member = setup["member_token"]
    write_policy(policy_path, '"identity:list_users": "role:member"\n')
    wait_for(lambda: list_users_status(setup, member) == 200, RELOAD_TIMEOUT, what="the override to apply")
    os.remove(policy_path)
    wait_for(lambda: list_users_status(setup, member) == 403, RELOAD_TIMEOUT,
             what="member to be refused again after removing policy.yaml")
    assert list_users_status(setup, setup["api"].admin_token) == 200
    assert_not_restarted(setup)


def test_policy_yaml_override_can_deny_admin(setup, policy_path):
    admin = setup["api"].admin_token
    assert list_users_status(setup, admin) == 200
    write_policy(policy_path, '"identity:list_users": "!"\n')
    wait_for(lambda: list_users_status(setup, admin) == 403, RELOAD_TIMEOUT,
             what="admin to be refused after policy.yaml denies identity:list_users")
    # Only the overridden rule changed.
    assert setup["api"].get("/projects", token=admin).status_code == 200
    assert_not_restarted(setup)
