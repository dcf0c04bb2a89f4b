"""The RBAC matrix: every route of every service (from `haneul policy routes`, which reads the
routers' own tables and the effective policy), called by each persona with a real token,
answers what its rule says: 401 without a token, 403 where the rule denies (or 404 where the
handler asks a resource rule on something the caller cannot see), and neither where it allows.

A route added without a rule cannot be built (the router is made from the table); a handler
that forgets the resource rule it declares answers 500 and fails here. Then, on real resources
of one project: a reader is refused writes, and another project's member does not see them.
"""
import json
import subprocess

import pytest
import requests

from support import HTTP_TIMEOUT, Api, Cli, unique

PERSONAS = ("anonymous", "system_admin", "project_admin", "project_manager", "project_member", "project_reader",
            "other_project_member")
FAKE_ID = "00000000-0000-4000-8000-00000000rbac"


# The matrix's admin calls create what an empty body may create (a region, a consumer): a
# cloud of this module's own.
@pytest.fixture(scope="module")
def server(module_server):
    return module_server


@pytest.fixture(scope="module")
def api(server):
    return Api(server)


@pytest.fixture(scope="module")
def cli(server):
    return Cli(server)


@pytest.fixture(scope="module")
def people(server, api):
    """A token per persona: project A's manager, member and reader, project B's member, the
    cloud's admin on its admin project and on the system."""
    a, b = api.new_project(), api.new_project()
    tokens = {"anonymous": None}
    for persona, role, project in [("project_manager", "manager", a), ("project_member", "member", a),
                                   ("project_reader", "reader", a), ("other_project_member", "member", b)]:
        user, pw = api.new_user(role, project_id=project["id"])
        tokens[persona] = api.issue(user["name"], pw, project_id=project["id"])
    tokens["project_admin"] = api.admin_token
    tokens["system_admin"] = api.issue("admin", system=True)
    admin_project = api.get("/projects", params={"name": "admin"}).json()["projects"][0]["id"]
    own = {p: a["id"] for p in ("project_manager", "project_member", "project_reader")}
    own.update({"other_project_member": b["id"], "project_admin": admin_project, "system_admin": FAKE_ID,
                "anonymous": FAKE_ID})
    return {"tokens": tokens, "own_project": own, "a": a, "b": b}


@pytest.fixture(scope="module")
def matrix(server):
    out = subprocess.run([server.binary, "policy", "routes"], env=server.env, capture_output=True, text=True,
                         timeout=60, check=True)
    return {s["service"]: s for s in json.loads(out.stdout)["services"]}


def base_url(server, service):
    return {"identity": f"http://127.0.0.1:{server.port}", "compute": f"http://127.0.0.1:{server.compute_port}",
            "network": f"http://127.0.0.1:{server.network_port}", "image": server.image_url,
            "placement": server.placement_url}[service]


def fill(path, own_project):
    """The route's path with its parameters: the persona's own project where one is named,
    an id nothing has elsewhere."""
    out = []
    for part in path.split("/"):
        if part in ("{project}", "{tenant}"):
            out.append(own_project)
        elif part.startswith("{"):
            out.append(FAKE_ID)
        else:
            out.append(part)
    return "/".join(out)


def call(server, service, row, token, own_project):
    url = base_url(server, service) + fill(row["path"], own_project)
    headers = {"X-Auth-Token": token} if token else {}
    if service == "placement":
        headers["OpenStack-API-Version"] = "placement latest"
    kw = {}
    if row["method"] in ("POST", "PUT", "PATCH"):
        body = {row["action"]: None} if row.get("action") else {}
        if service == "image" and row["path"].endswith(("/file", "/stage")):
            headers["Content-Type"] = "application/octet-stream"
            kw["data"] = b""
        elif service == "image" and row["method"] == "PATCH":
            headers["Content-Type"] = "application/openstack-images-v2.1-json-patch"
            kw["data"] = "[]"
        else:
            kw["json"] = body
    return requests.request(row["method"], url, headers=headers, timeout=HTTP_TIMEOUT, **kw)


def wrong(expect, access, status):
    """Why `status` is not what the matrix says, or None."""
    if status >= 500:
        return "a server error"
    if expect == "unauthenticated":
        return None if status == 401 else "expected 401"
    if expect == "deny":
        allowed = (403, 404) if access == "target" else (403,)
        return None if status in allowed else f"expected {' or '.join(map(str, allowed))}"
    if expect == "handler":
        return "the token is valid" if status == 401 else None  # Keystone's rules need the resource
    if expect == "allow" and access == "delegated":
        return "the token is valid" if status == 401 else None  # the other service's policy decides
    if expect == "allow":
        return "the rule allows it" if status in (401, 403) else None
    return f"unexpected expectation {expect}"


@pytest.mark.parametrize("service", ["identity", "compute", "network", "image", "placement"])
def test_every_route_answers_each_persona_as_its_rule_says(server, people, matrix, service):
    rows = matrix[service]["routes"]
    assert len(rows) > 20, rows
    problems = []
    for row in rows:
        if row["path"].endswith("/internal/dataplane") and row["method"] == "GET":
            continue  # the agents' long poll: service user only, and it holds the call 25 s
        for persona in PERSONAS:
            expect = row["expect"][persona]
            r = call(server, service, row, people["tokens"][persona], people["own_project"][persona])
            why = wrong(expect, row["access"], r.status_code)
            if why:
                what = f"{row['method']} {row['path']}" + (f" ({row['action']})" if row.get("action") else "")
                problems.append(f"{what} as {persona}: {r.status_code} ({why}; rule {row['rule']}): {r.text[:160]}")
    assert not problems, f"{len(problems)} of {len(rows) * len(PERSONAS)} calls:\n" + "\n".join(problems)


def test_the_matrix_covers_the_routes_that_were_open_before(matrix):
    """The routes found open to readers: each now names its Nova or Neutron rule."""
    def rule(service, method, path, action=None):
        for r in matrix[service]["routes"]:
            if r["method"] == method and r["path"] == path and r.get("action") == action:
                return r["rule"], r["expect"]["project_reader"]
        raise AssertionError(f"{method} {path} {action or ''} is not in the {service} table")

    assert rule("compute", "POST", "/v2.1/servers") == ("os_compute_api:servers:create", "deny")
    assert rule("compute", "DELETE", "/v2.1/servers/{id}") == ("os_compute_api:servers:delete", "deny")
    assert rule("compute", "GET", "/v2.1/servers/{id}") == ("os_compute_api:servers:show", "allow")
    assert rule("compute", "POST", "/v2.1/servers/{id}/action", "os-stop") == ("os_compute_api:servers:stop", "deny")
    assert rule("compute", "POST", "/v2.1/servers/{id}/action", "suspend") == (
        "os_compute_api:os-suspend-server:suspend", "deny")
    for member in ("network", "subnet", "port", "router"):
        assert rule("network", "POST", f"/v2.0/{member}s") == (f"create_{member}", "deny")
        assert rule("network", "GET", f"/v2.0/{member}s") == (f"get_{member}", "allow")
    assert rule("image", "POST", "/v2/images") == ("add_image", "deny")


# ---------------------------------------------------------------------------------------------
# On real resources of project A.

@pytest.fixture(scope="module")
def project_a(server, api, people):
    """A network with a subnet and a port, a router, a security group and a server of
    project A's member, and an image of theirs."""
    tok = people["tokens"]["project_member"]
    net = f"http://127.0.0.1:{server.network_port}/v2.0"

    def post(url, body):
        r = requests.post(url, json=body, headers={"X-Auth-Token": tok}, timeout=HTTP_TIMEOUT)
        assert r.status_code in (201, 202), f"{url}: {r.status_code} {r.text[:300]}"
        return r.json()

    network = post(f"{net}/networks", {"network": {"name": unique("rbac-net")}})["network"]
    subnet = post(f"{net}/subnets", {"subnet": {"network_id": network["id"], "cidr": "10.77.0.0/24",
                                                "ip_version": 4}})["subnet"]
    port = post(f"{net}/ports", {"port": {"network_id": network["id"]}})["port"]
    router = post(f"{net}/routers", {"router": {"name": unique("rbac-router")}})["router"]
    group = post(f"{net}/security-groups", {"security_group": {"name": unique("rbac-sg")}})["security_group"]
    image = post(f"{server.image_url}/v2/images", {"name": unique("rbac-image"), "disk_format": "raw",
                                                   "container_format": "bare"})
    put = requests.put(f"{server.image_url}/v2/images/{image['id']}/file", data=b"\0" * 65536, timeout=HTTP_TIMEOUT,
                       headers={"X-Auth-Token": tok, "Content-Type": "application/octet-stream"})
    assert put.status_code == 204, put.text
    flavors = requests.get(f"{server.compute_url}/flavors", headers={"X-Auth-Token": tok}, timeout=HTTP_TIMEOUT)
    flavor = flavors.json()["flavors"][0]["id"]
    srv = post(f"{server.compute_url}/servers", {"server": {"name": unique("rbac-vm"), "imageRef": image["id"],
                                                            "flavorRef": flavor, "networks": "none"}})["server"]
    return {"network": network, "subnet": subnet, "port": port, "router": router, "security-group": group,
            "image": image, "server": srv, "flavor": flavor}


def as_(people, persona, method, url, **kw):
    return requests.request(method, url, headers={"X-Auth-Token": people["tokens"][persona]}, timeout=HTTP_TIMEOUT,
                            **kw)


@pytest.mark.parametrize("collection,member", [("networks", "network"), ("subnets", "subnet"), ("ports", "port"),
                                               ("routers", "router"), ("security-groups", "security_group")])
def test_a_reader_sees_but_cannot_change_their_projects_network_resources(server, people, project_a, collection,
                                                                          member):
    rid = project_a[collection.rstrip("s")]["id"]
    url = f"http://127.0.0.1:{server.network_port}/v2.0/{collection}"
    assert as_(people, "project_reader", "GET", f"{url}/{rid}").status_code == 200
    created = as_(people, "project_reader", "POST", url, json={member: {"name": unique("no")}})
    assert created.status_code == 403, created.text
    assert created.json()["NeutronError"]["type"] == "PolicyNotAuthorized", created.text
    assert as_(people, "project_reader", "PUT", f"{url}/{rid}", json={member: {"name": "x"}}).status_code == 403
    assert as_(people, "project_reader", "DELETE", f"{url}/{rid}").status_code == 403


@pytest.mark.parametrize("collection", ["networks", "subnets", "ports", "routers", "security-groups"])
def test_another_projects_member_gets_404_on_them(server, people, project_a, collection):
    rid = project_a[collection.rstrip("s")]["id"]
    url = f"http://127.0.0.1:{server.network_port}/v2.0/{collection}/{rid}"
    for method in ("GET", "DELETE"):
        r = as_(people, "other_project_member", method, url)
        assert r.status_code == 404, f"{method}: {r.status_code} {r.text}"


def test_a_reader_cannot_create_delete_or_stop_a_server(server, people, project_a):
    sid = project_a["server"]["id"]
    base = server.compute_url
    assert as_(people, "project_reader", "GET", f"{base}/servers/{sid}").status_code == 200
    created = as_(people, "project_reader", "POST", f"{base}/servers", json={"server": {"name": "no"}})
    assert created.status_code == 403, created.text
    assert "os_compute_api:servers:create" in created.json()["forbidden"]["message"]
    assert as_(people, "project_reader", "DELETE", f"{base}/servers/{sid}").status_code == 403
    for action in ("os-stop", "suspend", "pause", "reboot"):
        r = as_(people, "project_reader", "POST", f"{base}/servers/{sid}/action", json={action: {"type": "SOFT"}})
        assert r.status_code == 403, f"{action}: {r.status_code} {r.text}"


def test_another_projects_member_gets_404_on_the_server_and_image(server, people, project_a):
    sid, iid = project_a["server"]["id"], project_a["image"]["id"]
    for method, url in [("GET", f"{server.compute_url}/servers/{sid}"),
                        ("DELETE", f"{server.compute_url}/servers/{sid}"),
                        ("POST", f"{server.compute_url}/servers/{sid}/action"),
                        ("GET", f"{server.image_url}/v2/images/{iid}"),
                        ("DELETE", f"{server.image_url}/v2/images/{iid}")]:
        kw = {"json": {"os-stop": None}} if method == "POST" else {}
        r = as_(people, "other_project_member", method, url, **kw)
        assert r.status_code == 404, f"{method} {url}: {r.status_code} {r.text}"


def test_a_reader_cannot_create_an_image(server, people):
    r = as_(people, "project_reader", "POST", f"{server.image_url}/v2/images", json={"name": unique("no")})
    assert r.status_code == 403, r.text


def test_a_system_scoped_token_is_refused_by_the_project_scoped_services(server, people):
    for url in [f"{server.compute_url}/servers", f"http://127.0.0.1:{server.network_port}/v2.0/networks",
                f"{server.image_url}/v2/images"]:
        r = as_(people, "system_admin", "GET", url)
        assert r.status_code == 403, f"{url}: {r.status_code} {r.text}"


def test_the_openstack_cli_as_a_reader_gets_403_for_network_create(server, api, cli, people):
    user, pw = api.new_user("reader", project_id=people["a"]["id"])
    env = server.os_env(user["name"], pw, project=people["a"]["name"])
    p = cli.run("network", "create", unique("cli-no"), env=env, check=False)
    assert p.returncode != 0
    assert "disallowed by policy" in p.stderr, p.stderr
    assert isinstance(cli.json("network", "list", env=env), list)


def test_an_admin_boots_on_another_projects_network_and_a_member_cannot(server, people, project_a):
    """Nova lets an admin use any network the network service shows the admin; the port is
    made in the server's project. Another project's member gets Nova's 400."""
    body = {"server": {"name": unique("rbac-admin-vm"), "imageRef": project_a["image"]["id"],
                       "flavorRef": project_a["flavor"],
                       "networks": [{"uuid": project_a["network"]["id"]}]}}
    refused = as_(people, "other_project_member", "POST", f"{server.compute_url}/servers", json=body)
    assert refused.status_code == 400, refused.text
    assert "could not be found" in refused.json()["badRequest"]["message"], refused.text
    made = as_(people, "project_admin", "POST", f"{server.compute_url}/servers", json=body)
    assert made.status_code == 202, made.text
    sid = made.json()["server"]["id"]
    assert as_(people, "project_admin", "DELETE", f"{server.compute_url}/servers/{sid}").status_code == 204
