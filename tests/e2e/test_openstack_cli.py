"""The unmodified `openstack` CLI (python-openstackclient) against a real `haneul serve`."""
import re
from dataclasses import dataclass

import pytest

from support import DEFAULT_DOMAIN_ID, unique

# What the CLI prints when `show` finds nothing, e.g. "No service with a type, name or ID of 'x' exists."
NOT_FOUND = re.compile(r"(?i)\bno \w+ (found|with\b.*\bexists)|not found|could not find|\b404\b")


def test_token_issue_returns_a_token_for_the_admin_project(cli, api):
    token = cli.json("token", "issue")
    admin_project = api.get("/projects", params={"name": "admin"}).json()["projects"][0]
    assert token["project_id"] == admin_project["id"]
    assert token["user_id"] and token["expires"]
    assert api.validate_status(token["id"]) == 200


def test_catalog_list_shows_identity_service_at_the_server_url(cli, server):
    catalog = cli.json("catalog", "list")
    identity = [entry for entry in catalog if entry["Type"] == "identity"]
    assert len(identity) == 1, catalog
    endpoints = identity[0]["Endpoints"]
    assert {e["interface"] for e in endpoints} >= {"public"}, endpoints
    assert all(e["url"].rstrip("/") == server.auth_url for e in endpoints), endpoints


@dataclass
class Lifecycle:
    """How one resource kind goes through create, list, show, set and delete on the CLI."""
    kind: str
    create: list                 # arguments after `<kind> create`, with {name} filled in
    id_key: str                  # the id field in create/show output
    list_key: str                # the column of `<kind> list` holding the id
    set_args: list               # arguments of `<kind> set`
    changed: tuple               # (field, value) that `show` has after the set
    needs_service: bool = False


LIFECYCLES = [
    Lifecycle("domain", ["{name}", "--description", "before"], "id", "ID",
              # a domain must be disabled before it can be deleted
              ["--description", "after", "--disable"], ("description", "after")),
    Lifecycle("project", ["{name}", "--domain", DEFAULT_DOMAIN_ID, "--description", "before"], "id", "ID",
              ["--description", "after"], ("description", "after")),
    Lifecycle("user", ["{name}", "--domain", DEFAULT_DOMAIN_ID, "--password", "pw-{name}", "--email", "before@example.org"],
              "id", "ID", ["--email", "after@example.org"], ("email", "after@example.org")),
    Lifecycle("group", ["{name}", "--domain", DEFAULT_DOMAIN_ID, "--description", "before"], "id", "ID",
              ["--description", "after"], ("description", "after")),
    Lifecycle("role", ["{name}", "--description", "before"], "id", "ID",
              ["--description", "after"], ("description", "after")),
    Lifecycle("region", ["{name}", "--description", "before"], "region", "Region",
              ["--description", "after"], ("description", "after")),
    Lifecycle("service", ["--name", "{name}", "--description", "before", "e2e-type"], "id", "ID",
              ["--description", "after"], ("description", "after")),
    Lifecycle("endpoint", ["--region", "RegionOne", "{service}", "public", "http://192.0.2.1:1234/v1"], "id", "ID",
              ["--url", "http://192.0.2.1:4321/v2"], ("url", "http://192.0.2.1:4321/v2"), needs_service=True),
]


@pytest.mark.parametrize("life", LIFECYCLES, ids=[lc.kind for lc in LIFECYCLES])
def test_cli_create_list_show_set_delete(cli, api, life):
    name = unique(life.kind)
    service = api.create("services", "service", type="e2e-endpoint", name=unique("svc")) if life.needs_service else None
    try:
        args = [a.format(name=name, service=service and service["id"]) for a in life.create]
        created = cli.json(life.kind, "create", *args)
        rid = created[life.id_key]
        if "name" in created:
            assert created["name"] == name

        listed = cli.json(life.kind, "list")
        assert rid in [row[life.list_key] for row in listed], f"{life.kind} {rid} missing from list"

        changed_field, changed_value = life.changed
        assert created[changed_field] != changed_value
        cli.run(life.kind, "set", *life.set_args, rid)
        shown = cli.json(life.kind, "show", rid)
        assert shown[life.id_key] == rid
        assert shown[changed_field] == changed_value, shown

        cli.run(life.kind, "delete", rid)
        gone = cli.run(life.kind, "show", rid, check=False)
        assert gone.returncode != 0, f"{life.kind} show after delete succeeded: {gone.stdout}"
        assert NOT_FOUND.search(gone.stderr), gone.stderr
    finally:
        if service:
            api.delete("services", service["id"])


def _assignment_roles(rows, user_name, project_name):
    got = set()
    for row in rows:
        assert row["User"] == f"{user_name}@Default", row
        assert row["Project"] == f"{project_name}@Default", row
        got.add(row["Role"])
    return got


def test_role_add_user_on_project_shows_in_role_assignment_list(cli, api):
    project = api.new_project()
    user, _ = api.new_user()
    cli.run("role", "add", "--user", user["id"], "--project", project["id"], "member")
    rows = cli.json("role", "assignment", "list", "--names", "--effective", "--user", user["id"], "--project", project["id"])
    # member implies reader, so the effective list has both.
    assert _assignment_roles(rows, user["name"], project["name"]) == {"member", "reader"}, rows


def test_effective_role_assignments_of_admin_include_implied_roles(cli, api):
    project = api.new_project()
    user, _ = api.new_user()
    cli.run("role", "add", "--user", user["name"], "--user-domain", "Default",
            "--project", project["name"], "--project-domain", "Default", "admin")
    rows = cli.json("role", "assignment", "list", "--names", "--effective", "--user", user["id"], "--project", project["id"])
    assert _assignment_roles(rows, user["name"], project["name"]) == {"admin", "manager", "member", "reader"}, rows


def test_cli_session_authenticated_with_application_credential(cli, api, server):
    project = api.new_project()
    user, password = api.new_user("member", project_id=project["id"])
    owner_env = server.os_env(user=user["name"], password=password, project=project["name"])
    created = cli.json("application", "credential", "create", unique("appcred"), env=owner_env)
    appcred = {k.lower(): v for k, v in created.items()}  # this command prints "ID", "Secret", ...
    assert appcred.get("id") and appcred.get("secret"), created
    # The CLI sends "roles": [], which Keystone reads as "all the roles of the creating token".
    assert {"member", "reader"} <= {r["name"] for r in appcred.get("roles") or []}, created

    env = server.os_env(user=user["name"], password="unused", project=None)
    for k in ("OS_USERNAME", "OS_PASSWORD", "OS_USER_DOMAIN_NAME"):
        del env[k]
    env.update({
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_APPLICATION_CREDENTIAL_ID": appcred["id"],
        "OS_APPLICATION_CREDENTIAL_SECRET": appcred["secret"],
    })
    token = cli.json("token", "issue", env=env)
    assert token["user_id"] == user["id"]
    assert token["project_id"] == project["id"]
    shown = cli.json("project", "show", project["id"], env=env)
    assert shown["name"] == project["name"]


def test_user_password_set_by_the_user_revokes_their_older_token(cli, api, server):
    project = api.new_project()
    user, old_password = api.new_user("member", project_id=project["id"])
    old_token = api.issue(user["name"], old_password, project_id=project["id"])
    assert api.validate_status(old_token) == 200

    new_password = "pw2-" + user["id"]
    cli.run("user", "password", "set", "--original-password", old_password, "--password", new_password,
            env=server.os_env(user=user["name"], password=old_password, project=project["name"]))

    assert api.validate_status(old_token) == 404
    assert api.get("/auth/projects", token=old_token).status_code == 401
    api.issue(user["name"], new_password, project_id=project["id"])
    rejected = api.http.post(api.url + "/auth/tokens", json=api.auth_body(user["name"], old_password))
    assert rejected.status_code == 401


def test_token_revoke_rejects_that_token_only(cli, api):
    victim = api.issue("admin", project_name="admin")
    assert api.validate_status(victim) == 200
    cli.run("token", "revoke", victim)
    assert api.validate_status(victim) == 404
    assert api.get("/auth/projects", token=victim).status_code == 401
    assert api.validate_status(api.admin_token) == 200
