"""Default RBAC of the identity API, seen through keystoneauth1 sessions of differently
scoped users (Keystone's defaults: admin > manager > member > reader, system and domain scope)."""
import pytest

from support import DEFAULT_DOMAIN_ID, assert_fault, keystone_session, unique


@pytest.fixture(scope="module")
def world(server, api):
    """Two projects, a member of the first, a system reader and a domain reader."""
    project_a = api.new_project()
    project_b = api.new_project()
    member, member_pw = api.new_user("member", project_id=project_a["id"])
    system_reader, system_reader_pw = api.new_user("reader", system=True)
    domain_reader, domain_reader_pw = api.new_user("reader", domain_id=DEFAULT_DOMAIN_ID)
    return {
        "project_a": project_a,
        "project_b": project_b,
        "member": keystone_session(server, member["name"], member_pw, project_id=project_a["id"]),
        "system_reader": keystone_session(server, system_reader["name"], system_reader_pw, system_scope="all"),
        "domain_reader": keystone_session(server, domain_reader["name"], domain_reader_pw, domain_id=DEFAULT_DOMAIN_ID),
        "system_admin": keystone_session(server, "admin", server.admin_password, system_scope="all"),
        "project_admin": keystone_session(server, "admin", server.admin_password, project_name="admin",
                                          project_domain_id=DEFAULT_DOMAIN_ID),
    }


def get(sess, server, path, **kw):
    return sess.get(server.auth_url + path, raise_exc=False, **kw)


def create_user(sess, server):
    body = {"user": {"name": unique("rbac-user"), "domain_id": DEFAULT_DOMAIN_ID}}
    return sess.post(server.auth_url + "/users", json=body, raise_exc=False)


def test_project_member_cannot_list_users(world, server):
    assert_fault(get(world["member"], server, "/users"), 403, "Forbidden")


def test_project_member_cannot_show_another_project(world, server):
    assert_fault(get(world["member"], server, f"/projects/{world['project_b']['id']}"), 403, "Forbidden")


def test_project_member_can_show_their_own_project(world, server):
    r = get(world["member"], server, f"/projects/{world['project_a']['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["project"]["name"] == world["project_a"]["name"]


def test_project_member_cannot_create_user(world, server):
    assert_fault(create_user(world["member"], server), 403, "Forbidden")


def test_system_reader_can_list_users(world, server):
    r = get(world["system_reader"], server, "/users")
    assert r.status_code == 200, r.text
    assert "admin" in [u["name"] for u in r.json()["users"]]


def test_system_reader_cannot_create_user(world, server):
    assert_fault(create_user(world["system_reader"], server), 403, "Forbidden")


def test_domain_reader_can_list_users_of_their_domain(world, server):
    r = get(world["domain_reader"], server, "/users", params={"domain_id": DEFAULT_DOMAIN_ID})
    assert r.status_code == 200, r.text
    assert "admin" in [u["name"] for u in r.json()["users"]]


def test_domain_reader_cannot_create_user(world, server):
    assert_fault(create_user(world["domain_reader"], server), 403, "Forbidden")


@pytest.mark.parametrize("who", ["system_admin", "project_admin"])
def test_admin_can_list_and_create_users(world, server, who):
    listed = get(world[who], server, "/users")
    assert listed.status_code == 200, listed.text
    created = create_user(world[who], server)
    assert created.status_code == 201, created.text
    new_id = created.json()["user"]["id"]
    assert get(world[who], server, f"/users/{new_id}").status_code == 200
