"""The compute API served so far (flavors, key pairs) with the unmodified `openstack` CLI and
plain HTTP: the default flavors, flavor management with extra specs and private access, key
pair import and generation, microversions, and Nova's faults for bad input."""
import subprocess

import pytest
import requests

from support import Api, Cli, HTTP_TIMEOUT, start_server, unique

DEFAULT_FLAVORS = {"m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge", "m1.nano"}


@pytest.fixture(scope="module")
def compute_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("compute-server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def env(compute_server):
    return Api(compute_server), Cli(compute_server)


def nova(srv, method, path, token, version=None, **kw):
    headers = {"X-Auth-Token": token, **kw.pop("headers", {})}
    if version:
        headers["OpenStack-API-Version"] = f"compute {version}"
    return requests.request(method, srv.compute_url + path, headers=headers, timeout=HTTP_TIMEOUT, **kw)


def assert_nova_fault(resp, status, key):
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:400]}"
    body = resp.json()
    assert list(body) == [key] and body[key]["code"] == status and body[key]["message"], body
    assert resp.headers["x-openstack-request-id"].startswith("req-")


def member_of_new_project(api):
    project = api.new_project()
    user, pw = api.new_user("member", project_id=project["id"])
    return project, user, pw


def test_the_default_flavors_exist(env):
    api, cli = env
    names = {f["Name"] for f in cli.json("flavor", "list")}
    assert DEFAULT_FLAVORS <= names
    nano = cli.json("flavor", "show", "m1.nano")
    assert nano["ram"] == 256 and nano["vcpus"] == 1 and nano["disk"] == 1 and nano["id"] == "42"


def test_flavor_management_with_properties_description_and_private_access(env, compute_server):
    api, cli = env
    name = unique("flavor")
    f = cli.json("flavor", "create", "--ram", "128", "--disk", "2", "--vcpus", "1", "--private",
                 "--property", "hw:cpu_policy=shared", "--description", "for tests", name)
    assert f["os-flavor-access:is_public"] is False and f["description"] == "for tests"
    cli.run("flavor", "set", "--property", "quota:disk_read_bytes_sec=10240000", name)
    shown = cli.json("flavor", "show", name)
    assert shown["properties"] == {"hw:cpu_policy": "shared", "quota:disk_read_bytes_sec": "10240000"}
    cli.run("flavor", "unset", "--property", "hw:cpu_policy", name)
    assert cli.json("flavor", "show", name)["properties"] == {"quota:disk_read_bytes_sec": "10240000"}

    project, user, pw = member_of_new_project(api)
    member = compute_server.os_env(user=user["name"], password=pw, project=None)
    member["OS_PROJECT_ID"] = project["id"]
    assert name not in {x["Name"] for x in cli.json("flavor", "list", env=member)}
    cli.run("flavor", "set", "--project", project["id"], name)
    assert name in {x["Name"] for x in cli.json("flavor", "list", env=member)}
    assert cli.json("flavor", "show", name)["access_project_ids"] == [project["id"]]
    # A member cannot change flavors.
    p = cli.run("flavor", "delete", name, env=member, check=False)
    assert p.returncode != 0
    cli.run("flavor", "unset", "--project", project["id"], name)
    assert name not in {x["Name"] for x in cli.json("flavor", "list", env=member)}
    cli.run("flavor", "delete", name)
    assert name not in {x["Name"] for x in cli.json("flavor", "list", "--all")}


def test_keypair_import_matches_ssh_keygen_and_generation_works(env, tmp_path):
    api, cli = env
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    expected = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", f"{key}.pub"], capture_output=True, text=True,
                              check=True).stdout.split()[1].removeprefix("MD5:")
    name = unique("key")
    created = cli.json("keypair", "create", "--public-key", f"{key}.pub", name)
    assert created["fingerprint"] == expected
    shown = cli.json("keypair", "show", name)
    assert shown["fingerprint"] == expected and shown["type"] == "ssh"
    assert name in {k["Name"] for k in cli.json("keypair", "list")}

    generated = unique("generated")
    private = tmp_path / "generated.pem"
    cli.run("keypair", "create", "--private-key", str(private), generated)
    assert "PRIVATE KEY" in private.read_text()
    # The stored public key is the private key's.
    private.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    stored = cli.run("keypair", "show", "--public-key", generated).stdout.split()[1]
    assert derived == stored
    for n in (name, generated):
        cli.run("keypair", "delete", n)
    assert not {name, generated} & {k["Name"] for k in cli.json("keypair", "list")}


def test_server_side_generation_before_2_92(env, compute_server):
    api, cli = env
    token = api.admin_token
    r = nova(compute_server, "POST", "/os-keypairs", token, "2.2", json={"keypair": {"name": unique("gen")}})
    assert r.status_code == 201, r.text
    body = r.json()["keypair"]
    assert "PRIVATE KEY" in body["private_key"] and body["public_key"].startswith("ssh-rsa ")
    r = nova(compute_server, "POST", "/os-keypairs", token, "2.92", json={"keypair": {"name": unique("gen")}})
    assert_nova_fault(r, 400, "badRequest")


def test_keypairs_are_per_user(env, compute_server, tmp_path):
    api, cli = env
    project, user, pw = member_of_new_project(api)
    token = api.issue(user["name"], pw, project_id=project["id"])
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = (tmp_path / "id.pub").read_text()
    name = unique("mine")
    r = nova(compute_server, "POST", "/os-keypairs", token, "2.2", json={"keypair": {"name": name, "public_key": public}})
    assert r.status_code == 201
    assert nova(compute_server, "GET", f"/os-keypairs/{name}", api.admin_token).status_code == 404
    r = nova(compute_server, "GET", f"/os-keypairs/{name}?user_id={user['id']}", api.admin_token, "2.10")
    assert r.status_code == 200 and r.json()["keypair"]["user_id"] == user["id"]
    # A member may not read another user's pairs.
    admin_id = cli.value("user", "show", "admin", "-c", "id")
    r = nova(compute_server, "GET", f"/os-keypairs?user_id={admin_id}", token, "2.10")
    assert_nova_fault(r, 403, "forbidden")


@pytest.mark.parametrize("method,path,version,body,status,key", [
    # Nova's fault table has no name for 406: it is a computeFault.
    ("GET", "/flavors", "2.1000", None, 406, "computeFault"),
    ("GET", "/flavors", "two.one", None, 400, "badRequest"),
    ("GET", "/flavors/no-such-flavor", None, None, 404, "itemNotFound"),
    ("GET", "/flavors?minRam=lots", None, None, 400, "badRequest"),
    ("GET", "/flavors?sort_key=colour", None, None, 400, "badRequest"),
    ("GET", "/flavors?marker=no-such-flavor", None, None, 400, "badRequest"),
    ("POST", "/flavors", None, "{not json", 400, "badRequest"),
    ("POST", "/flavors", None, '{"flavor": {"name": "x", "ram": -1, "vcpus": 1, "disk": 1}}', 400, "badRequest"),
    ("POST", "/flavors", None, '{"flavor": {"name": "x", "ram": 1, "vcpus": 1}}', 400, "badRequest"),
    ("POST", "/flavors", None, '{"flavor": {"name": "m1.tiny", "ram": 1, "vcpus": 1, "disk": 1}}', 409, "conflictingRequest"),
    ("POST", "/flavors", None, '{"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 1, "id": "1"}}', 409, "conflictingRequest"),
    ("POST", "/flavors", "2.1", '{"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 1, "description": "d"}}', 400, "badRequest"),
    ("PUT", "/flavors/1", "2.1", '{"flavor": {"description": "d"}}', 404, "itemNotFound"),
    ("POST", "/flavors/1/action", None, '{"addTenantAccess": {"tenant": "p"}}', 409, "conflictingRequest"),
    ("GET", "/flavors/1/os-flavor-access", None, None, 404, "itemNotFound"),
    ("PUT", "/flavors/1/os-extra_specs/a", None, '{"b": "c"}', 400, "badRequest"),
    ("GET", "/flavors/1/os-extra_specs/missing", None, None, 404, "itemNotFound"),
    ("POST", "/os-keypairs", "2.2", '{"keypair": {"name": "bad/name", "public_key": "ssh-rsa AAAA"}}', 400, "badRequest"),
    ("POST", "/os-keypairs", "2.2", '{"keypair": {"name": "k", "public_key": "not a key"}}', 400, "badRequest"),
    ("POST", "/os-keypairs", "2.2", '{"keypair": {"name": "k", "public_key": "x", "color": 1}}', 400, "badRequest"),
    ("DELETE", "/os-keypairs/no-such-key", None, None, 404, "itemNotFound"),
])
def test_bad_requests_get_nova_faults(env, compute_server, method, path, version, body, status, key):
    api, cli = env
    headers = {"Content-Type": "application/json"} if body else {}
    r = nova(compute_server, method, path, api.admin_token, version, data=body, headers=headers)
    assert_nova_fault(r, status, key)


def test_members_cannot_manage_flavors(env, compute_server):
    api, cli = env
    project, user, pw = member_of_new_project(api)
    token = api.issue(user["name"], pw, project_id=project["id"])
    r = nova(compute_server, "POST", "/flavors", token,
             json={"flavor": {"name": unique("f"), "ram": 64, "vcpus": 1, "disk": 1}})
    assert_nova_fault(r, 403, "forbidden")


def test_version_discovery_and_microversion_headers(compute_server):
    r = requests.get(compute_server.compute_url.removesuffix("/v2.1") + "/", timeout=HTTP_TIMEOUT)
    legacy, v = r.json()["versions"]
    assert r.status_code == 200 and v["id"] == "v2.1" and v["min_version"] == "2.1" and v["version"] == "2.100"
    # Nova lists its legacy v2.0 first; only its version document is served.
    assert legacy["id"] == "v2.0" and legacy["status"] == "SUPPORTED", legacy
    r = requests.get(legacy["links"][0]["href"], timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and r.json()["version"]["id"] == "v2.0"
    api = Api(compute_server)
    r = nova(compute_server, "GET", "/flavors", api.admin_token, "latest")
    assert r.headers["OpenStack-API-Version"] == "compute 2.100"
    assert r.headers["X-OpenStack-Nova-API-Version"] == "2.100"
    r = nova(compute_server, "GET", "/flavors/detail", api.admin_token, "2.74")
    assert r.json()["flavors"][0]["swap"] == ""
    r = nova(compute_server, "GET", "/flavors/detail", api.admin_token, "2.75")
    assert r.json()["flavors"][0]["swap"] == 0 and "extra_specs" in r.json()["flavors"][0]


def test_aggregates_make_availability_zones_with_novas_rules(env, compute_server):
    """`openstack aggregate ...` end to end: a zone aggregate with this host moves the host's
    compute service into the zone, is mirrored into placement, and cannot lose its zone;
    Nova's faults for the rest."""
    api, cli = env
    host = cli.json("compute", "service", "list", "--service", "nova-compute")[0]["Host"]
    name = unique("agg")
    agg = cli.json("aggregate", "create", "--zone", "az1", "--property", "a=b", name)
    assert agg["availability_zone"] == "az1" and agg["properties"]["a"] == "b", agg
    # An empty zone aggregate is no zone yet; with the host in it, the host's service is in it.
    assert "az1" not in {z["Zone Name"] for z in cli.json("availability", "zone", "list", "--compute")}
    shown = cli.json("aggregate", "add", "host", name, host)
    assert shown["hosts"] == [host], shown
    zones = {z["Zone Name"]: z for z in cli.json("availability", "zone", "list", "--compute")}
    assert zones["az1"]["Zone Status"] == "available" and "nova" not in zones, zones
    assert cli.json("compute", "service", "list", "--service", "nova-compute")[0]["Zone"] == "az1"
    rp = cli.json("resource", "provider", "list", "--name", host)[0]["uuid"]
    agg_uuid = cli.json("--os-compute-api-version", "2.41", "aggregate", "show", name)["uuid"]
    assert [a["uuid"] for a in cli.json("resource", "provider", "aggregate", "list", rp)] == [agg_uuid]

    cli.run("aggregate", "set", "--name", name + "-2", "--property", "c=d", name)
    shown = cli.json("aggregate", "show", name + "-2")
    assert shown["properties"] == {"a": "b", "c": "d"} and shown["availability_zone"] == "az1", shown
    cli.run("aggregate", "unset", "--property", "c", name + "-2")
    p = cli.run("aggregate", "unset", "--property", "availability_zone", name + "-2", check=False)
    assert p.returncode != 0 and "does not support empty named availability zone" in p.stderr, p.stderr
    token = api.admin_token
    number = shown["id"]
    # Another zone aggregate cannot take a host that is in az1 already.
    other = cli.json("aggregate", "create", "--zone", "az2", unique("agg"))
    r = nova(compute_server, "POST", f"/os-aggregates/{other['id']}/action", token, json={"add_host": {"host": host}})
    assert_nova_fault(r, 409, "conflictingRequest")
    assert "already in availability zone(s) ['az1']" in r.json()["conflictingRequest"]["message"]
    r = nova(compute_server, "POST", f"/os-aggregates/{number}/action", token, json={"add_host": {"host": host}})
    assert_nova_fault(r, 409, "conflictingRequest")
    r = nova(compute_server, "DELETE", f"/os-aggregates/{number}", token)
    assert_nova_fault(r, 400, "badRequest")
    assert "Host aggregate is not empty" in r.json()["badRequest"]["message"]
    # A server may ask for a zone that exists; one that does not is Nova's 400.
    r = nova(compute_server, "POST", "/servers", token, json={"server": {
        "name": "x", "imageRef": "3f1c5a0e-8c1e-4f4e-9b0a-2d6c7e1f9a11", "flavorRef": "42", "availability_zone": "nowhere"}})
    assert_nova_fault(r, 400, "badRequest")
    assert r.json()["badRequest"]["message"] == "The requested availability zone is not available"

    cli.run("aggregate", "remove", "host", name + "-2", host)
    assert cli.json("resource", "provider", "aggregate", "list", rp) == []
    assert cli.json("compute", "service", "list", "--service", "nova-compute")[0]["Zone"] == "nova"
    cli.run("aggregate", "delete", name + "-2", other["name"])
    assert cli.json("aggregate", "list") == []


@pytest.mark.parametrize("method,path,body,status,key", [
    ("GET", "/os-aggregates/abc", None, 400, "badRequest"),
    ("GET", "/os-aggregates/-1", None, 404, "itemNotFound"),
    ("DELETE", "/os-aggregates/-1", None, 404, "itemNotFound"),
    ("POST", "/os-aggregates", {"aggregate": {"name": ""}}, 400, "badRequest"),
    ("POST", "/os-aggregates", {"aggregate": {"name": "a" * 256}}, 400, "badRequest"),
    ("POST", "/os-aggregates", {"aggregate": {"name": "n", "availability_zone": "a:b"}}, 400, "badRequest"),
    ("POST", "/os-aggregates", {"aggregate": {"name": "n", "color": "red"}}, 400, "badRequest"),
    ("POST", "/os-aggregates/-1/action", {"add_host": {"host": "nowhere"}}, 404, "itemNotFound"),
    ("POST", "/os-aggregates/-1/action", {"remove_host": {"host": "nowhere"}}, 404, "itemNotFound"),
    ("POST", "/os-aggregates/-1/action", {"fly": {}}, 400, "badRequest"),
])
def test_bad_aggregate_requests_get_novas_faults(env, compute_server, method, path, body, status, key):
    api, _ = env
    assert_nova_fault(nova(compute_server, method, path, api.admin_token, json=body), status, key)


def test_members_cannot_see_or_make_aggregates(env, compute_server):
    api, _ = env
    project, user, pw = member_of_new_project(api)
    token = api.issue(user["name"], pw, project_id=project["id"])
    assert_nova_fault(nova(compute_server, "GET", "/os-aggregates", token), 403, "forbidden")
    r = nova(compute_server, "POST", "/os-aggregates", token, json={"aggregate": {"name": unique("agg")}})
    assert_nova_fault(r, 403, "forbidden")


def test_os_hosts_up_to_2_42(env, compute_server):
    """Nova's older host API: the hosts of the services, a compute host's resources,
    enable/disable; power actions and maintenance mode are not the QEMU driver's (501); gone
    from 2.43; admins only."""
    api, _ = env
    token = api.admin_token
    hosts = nova(compute_server, "GET", "/os-hosts", token).json()["hosts"]
    compute = [h for h in hosts if h["service"] == "compute"]
    assert compute and compute[0]["zone"] == "nova", hosts
    host = compute[0]["host_name"]
    assert nova(compute_server, "GET", "/os-hosts?zone=nova", token).json()["hosts"] == compute
    rows = nova(compute_server, "GET", f"/os-hosts/{host}", token).json()["host"]
    assert [r["resource"]["project"] for r in rows[:3]] == ["(total)", "(used_now)", "(used_max)"], rows
    assert rows[0]["resource"]["cpu"] > 0 and rows[0]["resource"]["memory_mb"] > 0, rows
    assert_nova_fault(nova(compute_server, "GET", "/os-hosts/no-such-host", token), 404, "itemNotFound")
    disabled = nova(compute_server, "PUT", f"/os-hosts/{host}", token, json={"status": "disable"})
    assert disabled.json() == {"host": host, "status": "disabled"}, disabled.text
    services = nova(compute_server, "GET", f"/os-services?host={host}&binary=nova-compute", token).json()
    assert services["services"][0]["status"] == "disabled", services
    enabled = nova(compute_server, "PUT", f"/os-hosts/{host}", token, json={"status": "Enable"})
    assert enabled.json()["status"] == "enabled", enabled.text
    assert_nova_fault(nova(compute_server, "PUT", f"/os-hosts/{host}", token, json={"status": "on"}), 400, "badRequest")
    assert_nova_fault(nova(compute_server, "PUT", f"/os-hosts/{host}", token, json={}), 400, "badRequest")
    assert_nova_fault(nova(compute_server, "PUT", f"/os-hosts/{host}", token, json={"maintenance_mode": "enable"}),
                      501, "notImplemented")
    assert_nova_fault(nova(compute_server, "GET", f"/os-hosts/{host}/reboot", token), 501, "notImplemented")
    assert_nova_fault(nova(compute_server, "GET", "/os-hosts/no-such-host/startup", token), 404, "itemNotFound")
    assert_nova_fault(nova(compute_server, "GET", "/os-hosts", token, "2.43"), 404, "itemNotFound")
    project, user, pw = member_of_new_project(api)
    member = api.issue(user["name"], pw, project_id=project["id"])
    assert_nova_fault(nova(compute_server, "GET", "/os-hosts", member), 403, "forbidden")


def test_extensions_list_novas_fixed_entries(env, compute_server):
    api, cli = env
    listed = cli.json("extension", "list", "--compute")
    aliases = [e["Alias"] for e in listed]
    assert len(aliases) == 99 and "os-migrations" in aliases and "OS-EXT-IPS" in aliases, aliases
    one = nova(compute_server, "GET", "/extensions/os-hosts", api.admin_token).json()["extension"]
    assert one["name"] == "Hosts" and one["namespace"].startswith("http://docs.openstack.org/"), one
    assert_nova_fault(nova(compute_server, "GET", "/extensions/nope", api.admin_token), 404, "itemNotFound")


def test_os_migrations_lists_for_admins_and_managers_only(env, compute_server):
    api, _ = env
    assert nova(compute_server, "GET", "/os-migrations", api.admin_token, "2.80").json() == {"migrations": []}
    project, user, pw = member_of_new_project(api)
    member = api.issue(user["name"], pw, project_id=project["id"])
    assert_nova_fault(nova(compute_server, "GET", "/os-migrations", member), 403, "forbidden")
    manager, manager_pw = api.new_user("manager", project_id=project["id"])
    token = api.issue(manager["name"], manager_pw, project_id=project["id"])
    assert nova(compute_server, "GET", "/os-migrations", token).json() == {"migrations": []}
