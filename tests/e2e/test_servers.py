"""Servers on real QEMU (TCG here) with the unmodified `openstack` CLI: boot the test guest
with a key and user data, read its console, delete it without leftovers; Nova's errors for bad
requests; and a restart of `haneul serve` that adopts running guests and never leaves a
server in BUILD."""
import datetime
import os
import re
import subprocess
import uuid

import pytest
import requests

from harness import Agent
from support import Api, Cli, HTTP_TIMEOUT, start_server, unique, wait_for

IMAGE = os.environ.get("HANEUL_TEST_IMAGE", "/var/cache/haneul-ci/images/haneul-testimg.qcow2")
IMAGE_NAME = "cirros-0.6.3-x86_64-disk"


def prepare(srv, tmp_path):
    """Uploads the test guest as a public image and imports a key pair; returns the key name."""
    assert os.path.exists(IMAGE), f"{IMAGE} missing: tests/run-all.sh builds it with tools/build-test-image.sh"
    cli = Cli(srv)
    cli.run("image", "create", "--file", IMAGE, "--disk-format", "qcow2", "--container-format", "bare", "--public",
            IMAGE_NAME)
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    cli.run("keypair", "create", "--public-key", f"{key}.pub", "k1")
    return "k1"


@pytest.fixture(scope="module")
def booted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("servers")
    srv = start_server(tmp / "data")
    prepare(srv, tmp)
    yield srv, tmp
    srv.stop()


def console(cli, server):
    return cli.run("console", "log", "show", server).stdout


def nova(srv, method, path, token, **kw):
    headers = {"X-Auth-Token": token, **kw.pop("headers", {})}
    return requests.request(method, srv.compute_url + path, headers=headers, timeout=HTTP_TIMEOUT, **kw)


def test_cli_boots_a_server_that_reads_its_metadata_and_deletes_it_without_leftovers(booted):
    srv, tmp = booted
    cli = Cli(srv)
    user_data = tmp / "ud.sh"
    user_data.write_text("#!/bin/sh\necho user-data-from-the-cli\n")
    name = unique("vm")
    server = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none",
                      "--key-name", "k1", "--user-data", str(user_data), "--wait", name)
    assert server["status"] == "ACTIVE", server
    sid = server["id"]
    for marker in ("HANEUL-TESTIMG: booted", f"HANEUL-TESTIMG: instance-id {sid}", "HANEUL-TESTIMG: key installed k1",
                   "user-data-from-the-cli", "HANEUL-TESTIMG: user-data ran rc=0", "HANEUL-TESTIMG: ready"):
        wait_for(lambda: marker in console(cli, name), 120, 1, what=f"{marker!r} on the console")
    listed = {s["ID"]: s for s in cli.json("server", "list")}
    assert listed[sid]["Status"] == "ACTIVE" and listed[sid]["Flavor"] == "m1.nano"
    shown = cli.json("server", "show", name)
    assert shown["OS-EXT-STS:power_state"] == 1 and shown["key_name"] == "k1"
    assert any(sid.encode() in open(f"/proc/{p}/cmdline", "rb").read() for p in srv.qemu_pids())
    # The server's resources are claimed in placement on its host's provider.
    claim = cli.json("resource", "provider", "allocation", "show", sid)
    assert [a["resources"] for a in claim] == [{"VCPU": 1, "MEMORY_MB": 256, "DISK_GB": 1}], claim
    host_rp = cli.json("resource", "provider", "list", "--name", shown["OS-EXT-SRV-ATTR:host"])
    assert [rp["uuid"] for rp in host_rp] == [claim[0]["resource_provider"]]

    cli.run("server", "delete", "--wait", name)
    assert cli.json("resource", "provider", "allocation", "show", sid) == []
    assert name not in {s["Name"] for s in cli.json("server", "list")}
    wait_for(lambda: not any(sid.encode() in open(f"/proc/{p}/cmdline", "rb").read() for p in srv.qemu_pids()),
             10, what="QEMU to be gone")
    assert not os.path.exists(os.path.join(srv.data_dir, "instances", sid))


@pytest.mark.parametrize("change,status,key", [
    ({"flavorRef": "no-such-flavor"}, 400, "badRequest"),
    ({"imageRef": "3f1c5a0e-8c1e-4f4e-9b0a-2d6c7e1f9a11"}, 400, "badRequest"),  # no such image
    ({"networks": "auto"}, 400, "badRequest"),
    ({"user_data": "not base64!"}, 400, "badRequest"),
    ({"key_name": "no-such-key"}, 400, "badRequest"),
    ({"name": ""}, 400, "badRequest"),
    ({"metadata": {"k": 5}}, 400, "badRequest"),
])
def test_bad_server_requests_get_nova_faults(booted, change, status, key):
    srv, _ = booted
    api = Api(srv)
    image_id = Cli(srv).value("image", "show", IMAGE_NAME, "-c", "id")
    body = {"name": unique("bad"), "imageRef": image_id, "flavorRef": "42", "networks": "none", **change}
    r = requests.post(srv.compute_url + "/servers", json={"server": body}, timeout=HTTP_TIMEOUT,
                      headers={"X-Auth-Token": api.admin_token, "OpenStack-API-Version": "compute 2.37"})
    assert r.status_code == status, r.text
    assert list(r.json()) == [key], r.text
    assert nova(srv, "GET", f"/servers/{uuid.uuid4()}", api.admin_token).status_code == 404


def test_a_server_that_fits_nowhere_is_in_error_with_no_valid_host(booted):
    srv, _ = booted
    cli = Cli(srv)
    flavor = unique("huge")
    cli.run("flavor", "create", "--ram", "256", "--vcpus", "1", "--disk", str(1 << 20), flavor)  # 1 PiB of disk
    name = unique("nohost")
    cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", flavor, "--nic", "none", name)
    wait_for(lambda: cli.json("server", "show", name)["status"] == "ERROR", 30, 0.5, what="ERROR")
    shown = cli.json("server", "show", name)
    assert shown["fault"]["message"] == "No valid host was found. There are not enough hosts available.", shown
    assert shown["fault"]["code"] == 500
    assert cli.json("resource", "provider", "allocation", "show", shown["id"]) == []
    cli.run("server", "delete", "--wait", name)
    cli.run("flavor", "delete", flavor)


def test_concurrent_boots_never_overcommit_the_host(booted):
    """Two servers that each need more than half of the host's free disk are created at once
    (their qcow2 overlays cost nothing until written): exactly one gets the host, the other
    has no valid host."""
    srv, _ = booted
    cli = Cli(srv)
    host = cli.json("resource", "provider", "list")[0]["uuid"]
    inv = {i["resource_class"]: i for i in cli.json("resource", "provider", "inventory", "list", host)}
    disk = inv["DISK_GB"]
    free = int((disk["total"] - disk["reserved"]) * disk["allocation_ratio"]) - disk["used"]
    flavor = unique("wide")
    cli.run("flavor", "create", "--ram", "256", "--vcpus", "1", "--disk", str(free // 2 + 1), flavor)
    api = Api(srv)
    image_id = cli.value("image", "show", IMAGE_NAME, "-c", "id")
    flavor_id = cli.value("flavor", "show", flavor, "-c", "id")

    def create(name):
        body = {"server": {"name": name, "imageRef": image_id, "flavorRef": flavor_id, "networks": "none"}}
        r = requests.post(srv.compute_url + "/servers", json=body, timeout=HTTP_TIMEOUT,
                          headers={"X-Auth-Token": api.admin_token, "OpenStack-API-Version": "compute 2.37"})
        assert r.status_code == 202, r.text
        return r.json()["server"]["id"]

    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        ids = list(pool.map(create, [unique("a"), unique("b")]))

    def settled():
        return sorted(nova(srv, "GET", f"/servers/{i}", api.admin_token).json()["server"]["status"] for i in ids)

    wait_for(lambda: "BUILD" not in settled(), 60, 0.5, what="both servers to settle")
    assert settled() == ["ACTIVE", "ERROR"]
    for i in ids:
        cli.run("server", "delete", "--wait", i)
    cli.run("flavor", "delete", flavor)


def test_quota_excess_gets_novas_403_and_limits_show_the_quota(booted):
    srv, _ = booted
    cli = Cli(srv)
    quota = {r["Resource"]: r["Limit"] for r in cli.json("quota", "show", "admin")}
    assert (quota["instances"], quota["cores"], quota["ram"], quota["key-pairs"]) == (10, 20, 51200, 100)
    cli.run("quota", "set", "--instances", "0", "admin")
    try:
        p = cli.run("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none",
                    unique("over"), check=False)
        assert p.returncode != 0, p.stdout
        assert "Quota exceeded for instances: Requested 1, but already used 0 of 0 instances" in p.stderr, p.stderr
        assert "403" in p.stderr, p.stderr
        limits = {r["Name"]: r["Value"] for r in cli.json("limits", "show", "--absolute")}
        assert limits["max_total_instances"] == 0 and limits["max_total_cores"] == 20, limits
        cli.run("quota", "set", "--instances", "10", "--cores", "0", "admin")
        p = cli.run("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none",
                    unique("over"), check=False)
        assert "Quota exceeded for cores: Requested 1, but already used 0 of 0 cores" in p.stderr, p.stderr
    finally:
        cli.run("quota", "set", "--instances", "10", "--cores", "20", "admin")
    assert not [s for s in cli.json("server", "list") if s["Name"].startswith("over")]


def test_two_hosts_place_group_members_by_policy_and_an_agent_reports_down_then_adopts(tmp_path):
    """A second host: `haneul agent` with its own data directory on this machine. Anti-affinity
    members land on different hosts (a third has no valid host), affinity members share one;
    a stopped agent's service goes down while its guest keeps running, and the restarted
    agent adopts that guest (same QEMU pid)."""
    srv = start_server(tmp_path / "controller")
    node2 = None
    try:
        prepare(srv, tmp_path)
        cli = Cli(srv)
        node2 = Agent(srv, tmp_path / "node2", "node2").start()

        def computes():
            return {s["Host"]: s for s in cli.json("compute", "service", "list", "--service", "nova-compute")}

        wait_for(lambda: computes().get("node2", {}).get("State") == "up", 30, 0.5, what="node2 to report")
        assert all(s["State"] == "up" for s in computes().values()) and len(computes()) == 2
        assert len(cli.json("hypervisor", "list")) == 2
        # node2 alone in zone az2 (before it has servers: a host with servers keeps its zone).
        zone_agg = cli.json("aggregate", "create", "--zone", "az2", unique("agg"))
        cli.run("aggregate", "add", "host", zone_agg["name"], "node2")
        anti = cli.json("server", "group", "create", "--policy", "anti-affinity", unique("anti"))
        together = cli.json("server", "group", "create", "--policy", "affinity", unique("together"))

        def boot(group, name, wait=True):
            args = ["server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none",
                    "--hint", f"group={group['id']}", name]
            return cli.json(*args, *(["--wait"] if wait else []))

        a1, a2 = boot(anti, unique("a1")), boot(anti, unique("a2"))
        assert a1["status"] == a2["status"] == "ACTIVE", (a1, a2)
        assert {a1["OS-EXT-SRV-ATTR:host"], a2["OS-EXT-SRV-ATTR:host"]} == set(computes()), (a1, a2)
        on_node2 = a1 if a1["OS-EXT-SRV-ATTR:host"] == "node2" else a2
        assert len(node2.qemu_pids()) == 1 and len(srv.qemu_pids()) == 1
        assert os.path.isdir(os.path.join(node2.data_dir, "instances", on_node2["id"]))
        a3 = boot(anti, unique("a3"), wait=False)
        wait_for(lambda: cli.json("server", "show", a3["id"])["status"] == "ERROR", 30, 0.5, what="ERROR")
        assert "No valid host" in cli.json("server", "show", a3["id"])["fault"]["message"]
        t1, t2 = boot(together, unique("t1")), boot(together, unique("t2"))
        assert t1["OS-EXT-SRV-ATTR:host"] == t2["OS-EXT-SRV-ATTR:host"] and t2["status"] == "ACTIVE"
        assert set(cli.json("server", "group", "show", together["id"])["members"]) == {t1["id"], t2["id"]}
        shown = cli.json("--os-compute-api-version", "2.71", "server", "show", t1["id"])
        assert shown["server_groups"] == [together["id"]]
        wait_for(lambda: "HANEUL-TESTIMG: booted" in console(cli, on_node2["id"]), 60, 1, what="node2's console")
        z = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none",
                     "--availability-zone", "az2", "--wait", unique("z"))
        assert (z["OS-EXT-SRV-ATTR:host"], z["OS-EXT-AZ:availability_zone"]) == ("node2", "az2"), z
        assert a1["OS-EXT-AZ:availability_zone"] in ("nova", "az2")
        cli.run("server", "delete", "--wait", z["id"])

        pids = set(node2.qemu_pids())
        node2.stop(keep_instances=True)
        wait_for(lambda: computes()["node2"]["State"] == "down", 30, 1, what="node2 to be down")
        assert set(node2.qemu_pids()) == pids, "guests outlive their agent"
        assert cli.json("server", "show", on_node2["id"])["status"] == "ACTIVE"
        node2.start()
        wait_for(lambda: computes()["node2"]["State"] == "up", 30, 0.5, what="node2 to be up again")
        assert set(node2.qemu_pids()) == pids, "the restarted agent adopts its guests"
        cli.run("server", "stop", on_node2["id"])
        wait_for(lambda: cli.json("server", "show", on_node2["id"])["status"] == "SHUTOFF", 90, 1, what="SHUTOFF")
        assert not any(on_node2["id"].encode() in open(f"/proc/{p}/cmdline", "rb").read() for p in node2.qemu_pids())

        for s in (a1, a2, a3, t1, t2):
            cli.run("server", "delete", "--wait", s["id"])
        assert cli.json("server", "group", "show", together["id"])["members"] == []
        cli.run("server", "group", "delete", anti["id"], together["id"])
        assert srv.qemu_pids() == [] and node2.qemu_pids() == []
        assert set(os.listdir(os.path.join(node2.data_dir, "instances"))) <= {"_base", ".accel"}
    finally:
        if node2:
            node2.stop()
        srv.stop(kill=True)


def test_services_hypervisors_and_zones_and_a_disabled_host_takes_no_servers(booted):
    srv, _ = booted
    cli = Cli(srv)
    services = {s["Binary"]: s for s in cli.json("compute", "service", "list")}
    assert set(services) == {"nova-compute", "nova-scheduler", "nova-conductor"}
    compute = services["nova-compute"]
    assert (compute["State"], compute["Status"], compute["Zone"]) == ("up", "enabled", "nova")
    hv = cli.json("hypervisor", "list")
    assert [h["Hypervisor Hostname"] for h in hv] == [compute["Host"]] and hv[0]["State"] == "up"
    shown = cli.json("--os-compute-api-version", "2.87", "hypervisor", "show", str(hv[0]["ID"]))
    assert shown["vcpus"] >= 1 and shown["memory_mb"] > 0 and shown["hypervisor_type"] == "QEMU"
    zones = {z["Zone Name"]: z for z in cli.json("availability", "zone", "list", "--compute")}
    assert zones["nova"]["Zone Status"] == "available" and "internal" in zones  # the admin sees the controller zone

    cli.run("compute", "service", "set", "--disable", "--disable-reason", "maintenance", compute["Host"], "nova-compute")
    try:
        assert cli.json("compute", "service", "list", "--service", "nova-compute")[0]["Status"] == "disabled"
        name = unique("disabled")
        cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none", name)
        wait_for(lambda: cli.json("server", "show", name)["status"] == "ERROR", 30, 0.5, what="ERROR")
        assert "No valid host" in cli.json("server", "show", name)["fault"]["message"]
        cli.run("server", "delete", "--wait", name)
    finally:
        cli.run("compute", "service", "set", "--enable", compute["Host"], "nova-compute")
    assert cli.json("compute", "service", "list", "--service", "nova-compute")[0]["Status"] == "enabled"


def test_the_metadata_service_answers_a_signed_request_in_both_formats(booted):
    """What the proxy in a guest's network will forward (the network service adds it): the
    instance id signed with the shared secret; OpenStack and EC2 documents as on the config drive."""
    import hashlib
    import hmac
    srv, tmp = booted
    cli = Cli(srv)
    user_data = tmp / "md-ud.sh"
    user_data.write_text("#!/bin/sh\necho from-metadata\n")
    server = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none",
                      "--key-name", "k1", "--user-data", str(user_data), "--property", "role=web", unique("md"))
    sid = server["id"]
    secret = open(os.path.join(srv.data_dir, "metadata-proxy-secret")).read().strip()

    def get(path, instance=sid, key=secret):
        sig = hmac.new(key.encode(), instance.encode(), hashlib.sha256).hexdigest()
        return requests.get(srv.metadata_url + path, timeout=HTTP_TIMEOUT,
                            headers={"X-Instance-ID": instance, "X-Instance-ID-Signature": sig})

    md = get("/openstack/latest/meta_data.json").json()
    assert md["uuid"] == sid and md["meta"] == {"role": "web"} and list(md["public_keys"]) == ["k1"]
    assert get("/openstack/2013-10-17/meta_data.json").json()["uuid"] == sid
    assert get("/openstack/latest/user_data").text == "#!/bin/sh\necho from-metadata\n"
    assert "network_data.json" in get("/openstack/latest").text.split()
    assert get("/latest/meta-data/instance-id").text.startswith("i-")
    assert get("/latest/meta-data/public-keys/").text == "0=k1"
    assert get("/latest/meta-data/public-keys/0/openssh-key").text.startswith("ssh-ed25519 ")
    assert get("/latest/user-data").text.startswith("#!/bin/sh")
    # The guest leaves its (encrypted) password once; os-server-password shows and clears it.
    def post_password(text):
        sig = hmac.new(secret.encode(), sid.encode(), hashlib.sha256).hexdigest()
        return requests.post(srv.metadata_url + "/openstack/latest/password", data=text, timeout=HTTP_TIMEOUT,
                             headers={"X-Instance-ID": sid, "X-Instance-ID-Signature": sig})
    token = Api(srv).admin_token
    assert nova(srv, "GET", f"/servers/{sid}/os-server-password", token).json() == {"password": ""}
    assert post_password("x" * 257).status_code == 400
    assert post_password("c2VjcmV0").status_code == 200
    assert post_password("again").status_code == 409
    assert get("/openstack/latest/password").text == "c2VjcmV0"
    assert nova(srv, "GET", f"/servers/{sid}/os-server-password", token).json() == {"password": "c2VjcmV0"}
    assert nova(srv, "DELETE", f"/servers/{sid}/os-server-password", token).status_code == 204
    assert nova(srv, "GET", f"/servers/{sid}/os-server-password", token).json() == {"password": ""}
    # Wrong secret, unknown instance, no headers: refused.
    assert get("/openstack/latest/meta_data.json", key="wrong").status_code == 403
    assert get("/openstack/latest/meta_data.json", instance=str(uuid.uuid4())).status_code == 404
    assert requests.get(srv.metadata_url + "/openstack/latest/meta_data.json", timeout=HTTP_TIMEOUT).status_code == 400
    cli.run("server", "delete", "--wait", sid)
    assert get("/openstack/latest/meta_data.json").status_code == 404


def test_server_metadata_tags_and_lock_with_the_cli(booted):
    srv, _ = booted
    admin = Cli(srv)
    api = Api(srv)
    project = admin.value("project", "show", "admin", "-c", "id")
    user, password = api.new_user(role="member", project_id=project)
    member_env = srv.os_env(user=user["name"], password=password, project="admin")
    member = Cli(srv)
    name = unique("meta")
    sid = member.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none",
                      "--property", "a=1", name, env=member_env)["id"]
    member.run("server", "set", "--property", "b=2", "--property", "c=3", name, env=member_env)
    member.run("server", "unset", "--property", "a", name, env=member_env)
    assert member.json("server", "show", name, env=member_env)["properties"] == {"b": "2", "c": "3"}
    v26 = ["--os-compute-api-version", "2.26"]
    member.run(*v26, "server", "set", "--tag", "web", "--tag", "prod", name, env=member_env)
    assert sorted(member.json(*v26, "server", "show", name, env=member_env)["tags"]) == ["prod", "web"]
    listed = member.json(*v26, "server", "list", "--tag", "web", "--tag", "prod", env=member_env)
    assert [s["ID"] for s in listed] == [sid]
    assert sid not in [s["ID"] for s in member.json(*v26, "server", "list", "--not-tag", "web", env=member_env)]
    member.run(*v26, "server", "unset", "--tag", "prod", name, env=member_env)
    assert member.json(*v26, "server", "show", name, env=member_env)["tags"] == ["web"]

    admin.run("--os-compute-api-version", "2.73", "server", "lock", "--reason", "audit", sid)
    shown = admin.json("--os-compute-api-version", "2.73", "server", "show", sid)
    assert shown["locked"] is True and shown["locked_reason"] == "audit"
    p = member.run("server", "set", "--property", "d=4", name, env=member_env, check=False)
    assert p.returncode != 0 and f"Instance {sid} is locked" in p.stderr, p.stderr
    p = member.run("server", "delete", name, env=member_env, check=False)
    assert p.returncode != 0 and "is locked" in p.stderr, p.stderr
    # Locked from the server's own project, so the project's member may lift it (as Nova).
    member.run("server", "unlock", name, env=member_env)
    assert admin.json("--os-compute-api-version", "2.73", "server", "show", sid)["locked"] is False
    member.run("server", "delete", "--wait", name, env=member_env)


def test_a_restart_adopts_running_servers_and_never_leaves_one_building(tmp_path):
    srv = start_server(tmp_path / "data")
    try:
        prepare(srv, tmp_path)
        cli = Cli(srv)
        running = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none",
                           "--wait", unique("running"))
        assert running["status"] == "ACTIVE"
        pids_before = set(srv.qemu_pids())
        assert len(pids_before) == 1
        building = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none",
                            unique("building"))
        srv.stop(kill=True, keep_instances=True)
        assert pids_before <= set(srv.qemu_pids()), "QEMU must outlive haneul serve"
        srv.start()
        cli = Cli(srv)
        shown = cli.json("server", "show", running["id"])
        assert shown["status"] == "ACTIVE", shown
        assert pids_before <= set(srv.qemu_pids()), "the running guest must be adopted, not restarted"
        after = cli.json("server", "show", building["id"])
        assert after["status"] in ("ACTIVE", "ERROR"), after
        if after["status"] == "ERROR":
            assert "restart" in after["fault"]["message"], after
        for s in (running, building):
            cli.run("server", "delete", "--wait", s["id"])
        assert srv.qemu_pids() == []
    finally:
        srv.stop(kill=True)


def test_power_actions_reach_their_states(booted):
    srv, tmp = booted
    cli = Cli(srv)
    api = Api(srv)
    name = unique("power")
    server = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none", "--wait", name)
    sid = server["id"]

    def status():
        shown = cli.json("server", "show", sid)
        assert shown["status"] != "ERROR", shown.get("fault")
        return shown["status"]

    def qemu_running():
        return any(sid.encode() in open(f"/proc/{p}/cmdline", "rb").read() for p in srv.qemu_pids())

    wait_for(lambda: "HANEUL-TESTIMG: ready" in console(cli, sid), 120, 1, what="the guest to be ready")
    # Starting an active server is a conflict.
    r = nova(srv, "POST", f"/servers/{sid}/action", api.admin_token, json={"os-start": None})
    assert r.status_code == 409 and list(r.json()) == ["conflictingRequest"], r.text

    cli.run("server", "stop", name)
    wait_for(lambda: status() == "SHUTOFF", 90, 1, what="SHUTOFF")
    assert not qemu_running()
    assert "HANEUL-TESTIMG: powering off" in console(cli, sid)

    cli.run("server", "start", name)
    wait_for(lambda: status() == "ACTIVE", 60, 1, what="ACTIVE after start")
    assert qemu_running()

    cli.run("server", "pause", name)
    wait_for(lambda: status() == "PAUSED", 30, 1, what="PAUSED")
    cli.run("server", "unpause", name)
    wait_for(lambda: status() == "ACTIVE", 30, 1, what="ACTIVE after unpause")

    pid_before = [p for p in srv.qemu_pids() if sid.encode() in open(f"/proc/{p}/cmdline", "rb").read()]
    cli.run("server", "reboot", "--hard", name)

    def rebooted():
        pids = [p for p in srv.qemu_pids() if sid.encode() in open(f"/proc/{p}/cmdline", "rb").read()]
        return status() == "ACTIVE" and pids and pids != pid_before
    wait_for(rebooted, 60, 1, what="a new QEMU after a hard reboot")

    # Rebuild: a new root disk from the image, the guest boots again from it (a fresh boot
    # writes the marker again), the server keeps its id and host.
    disk = os.path.join(srv.data_dir, "instances", sid, "disk")
    disk_before = os.stat(disk).st_ino
    boots = console(cli, name).count("HANEUL-TESTIMG: booted")
    cli.run("server", "rebuild", "--image", IMAGE_NAME, "--wait", name)
    rebuilt = cli.json("server", "show", name)
    assert rebuilt["status"] == "ACTIVE" and rebuilt["id"] == sid and rebuilt["OS-EXT-STS:task_state"] is None, rebuilt
    assert os.stat(disk).st_ino != disk_before, "the rebuild made a new disk"
    wait_for(lambda: console(cli, name).count("HANEUL-TESTIMG: booted") > boots, 120, 1, what="a boot after the rebuild")
    assert "rebuild" in {e["Action"] for e in cli.json("server", "event", "list", sid)}
    cli.run("server", "delete", "--wait", name)


def test_a_guest_that_powers_itself_off_becomes_shutoff(booted):
    srv, tmp = booted
    cli = Cli(srv)
    user_data = tmp / "poweroff.sh"
    user_data.write_text("#!/bin/sh\n(sleep 2; poweroff) &\n")
    name = unique("selfoff")
    cli.run("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none", "--user-data",
            str(user_data), "--wait", name)
    wait_for(lambda: cli.json("server", "show", name)["status"] == "SHUTOFF", 120, 1, what="SHUTOFF")
    assert cli.json("server", "show", name)["OS-EXT-STS:power_state"] == 4
    cli.run("server", "delete", "--wait", name)


def test_instance_actions_usage_and_paging(booted):
    """`openstack server event list/show` after a boot and a hard reboot (the create's action
    under the request id the create answered with), the actions of a deleted server (2.21),
    `openstack usage show`, and server list paging."""
    srv, _ = booted
    cli, api = Cli(srv), Api(srv)
    token = api.admin_token
    image_id = cli.value("image", "show", IMAGE_NAME, "-c", "id")
    r = nova(srv, "POST", "/servers", token, headers={"OpenStack-API-Version": "compute 2.37"}, json={"server": {
        "name": unique("acts"), "imageRef": image_id, "flavorRef": "42", "networks": "none"}})
    assert r.status_code == 202, r.text
    sid, create_rid = r.json()["server"]["id"], r.headers["x-compute-request-id"]
    assert create_rid == r.headers["x-openstack-request-id"]
    wait_for(lambda: cli.json("server", "show", sid)["status"] == "ACTIVE", 120, 1, what="ACTIVE")
    cli.run("server", "reboot", "--hard", "--wait", sid)
    events = cli.json("server", "event", "list", sid)
    assert sorted(e["Action"] for e in events) == ["create", "reboot"], events
    create = cli.json("server", "event", "show", sid, create_rid)
    assert create["action"] == "create" and create["id"] == create_rid, create
    build = [e for e in create["events"] if e["event"] == "compute__do_build_and_run_instance"]
    assert build and build[0]["result"] == "Success" and build[0]["finish_time"], create
    # A server's own project sees the actions; events carry no host for it (2.62 hostId only).
    r = nova(srv, "GET", f"/servers/{sid}/os-instance-actions/{create_rid}", token,
             headers={"OpenStack-API-Version": "compute 2.84"})
    assert r.status_code == 200 and r.json()["instanceAction"]["events"][0]["host"], r.text
    r = nova(srv, "GET", f"/servers/{sid}/os-instance-actions/req-00000000-0000-0000-0000-000000000000", token)
    assert r.status_code == 404 and r.json()["itemNotFound"]["message"].startswith("Action req-")

    # Paging: one server per page, with the next link carrying the marker.
    r = nova(srv, "GET", "/servers?limit=1", token)
    assert len(r.json()["servers"]) == 1 and "marker=" in r.json()["servers_links"][0]["href"], r.text
    assert nova(srv, "GET", "/servers?limit=-1", token).status_code == 400
    assert nova(srv, "GET", "/servers?marker=nope", token).json()["badRequest"]["message"] == "marker [nope] not found"

    usage = cli.json("usage", "show", "--project", "admin")
    servers = usage["Servers"]
    assert (len(servers) if isinstance(servers, list) else int(servers)) >= 1, usage
    assert float(usage["CPU Hours"]) >= 0, usage
    cli.run("server", "delete", "--wait", sid)
    r = nova(srv, "GET", f"/servers/{sid}/os-instance-actions", token, headers={"OpenStack-API-Version": "compute 2.21"})
    assert sorted(a["action"] for a in r.json()["instanceActions"]) == ["create", "delete", "reboot"], r.text
    assert nova(srv, "GET", f"/servers/{sid}/os-instance-actions", token).status_code == 404
    r = nova(srv, "GET", "/os-simple-tenant-usage?detailed=1&start=2000-01-01T00:00:00", token)
    mine = [u for t in r.json()["tenant_usages"] for u in t["server_usages"] if u["instance_id"] == sid]
    assert mine and mine[0]["state"] == "terminated" and mine[0]["hours"] > 0, r.text
    r = nova(srv, "GET", "/os-simple-tenant-usage?start=2000-01-01Z", token)
    assert r.json()["badRequest"]["message"] == "Invalid datetime string: Datetime is in invalid format"

    # `haneul db purge --before`: what stays of deleted servers goes, from a second process on
    # the same database while the cloud runs; a date before the delete purges nothing.
    purge = lambda before: subprocess.run([srv.binary, "db", "purge", "--before", before], env=srv.env,
                                          capture_output=True, text=True, timeout=60)
    kept = purge("2000-01-01")
    assert kept.returncode == 0 and ": 0 deleted servers, 0 instance actions" in kept.stdout, kept.stdout + kept.stderr
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)).isoformat()
    done = purge(later)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = re.search(r": (\d+) deleted servers, (\d+) instance actions", done.stdout)
    assert counts and int(counts[1]) >= 1 and int(counts[2]) >= 3, done.stdout
    r = nova(srv, "GET", f"/servers/{sid}/os-instance-actions", token, headers={"OpenStack-API-Version": "compute 2.21"})
    assert r.status_code == 404, r.text
    r = nova(srv, "GET", "/os-simple-tenant-usage?detailed=1&start=2000-01-01T00:00:00", token)
    assert not [u for t in r.json()["tenant_usages"] for u in t["server_usages"] if u["instance_id"] == sid], r.text
    assert purge("yesterday").returncode != 0



def test_servers_on_networks_get_ports_that_go_with_them(booted):
    """`server create --network` / `--port`: the compute service makes (or takes over) the
    port on the network service, bound to the server's host; the server shows its address;
    delete removes the port it made and lets go of the one it was given. Interfaces attached
    and detached through the server (os-interface: `server add network`, `remove port`),
    with Nova's 400/404/409 for bad ones. (test_dataplane checks what the guest sees.)"""
    srv, _ = booted
    cli = Cli(srv)
    net = cli.json("network", "create", unique("net"))
    cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "10.60.0.0/24", unique("sub"))
    given = cli.json("port", "create", "--network", net["id"], unique("port"))
    a = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--network", net["id"],
                 "--wait", unique("vm"))
    b = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--port", given["id"],
                 "--wait", unique("vm"))
    assert a["status"] == "ACTIVE" and b["status"] == "ACTIVE"
    shown = cli.json("server", "show", a["id"])
    addresses = shown["addresses"]
    assert list(addresses) == [net["name"]] and addresses[net["name"]][0].startswith("10.60.0."), addresses
    ports = cli.json("port", "list", "--server", a["id"], "--long")
    assert len(ports) == 1
    port = cli.json("port", "show", ports[0]["ID"])
    assert port["device_owner"] == "compute:nova" and port["binding_host_id"] == shown["OS-EXT-SRV-ATTR:host"]
    assert port["fixed_ips"][0]["ip_address"] in addresses[net["name"]][0]
    assert cli.json("port", "show", given["id"])["device_id"] == b["id"]
    # Security groups through the server (Nova's addSecurityGroup/removeSecurityGroup): its
    # port follows, and so does the server's view.
    token = Api(srv).admin_token
    sg = cli.json("security", "group", "create", unique("sg"))
    cli.run("server", "add", "security", "group", a["id"], sg["name"])
    assert sg["id"] in cli.json("port", "show", port["id"])["security_group_ids"]
    view = nova(srv, "GET", f"/servers/{a['id']}", token).json()["server"]
    assert view["security_groups"] == [{"name": "default"}, {"name": sg["name"]}], view["security_groups"]
    cli.run("server", "remove", "security", "group", a["id"], sg["name"])
    assert sg["id"] not in cli.json("port", "show", port["id"])["security_group_ids"]
    r = nova(srv, "POST", f"/servers/{a['id']}/action", token, json={"removeSecurityGroup": {"name": sg["name"]}})
    assert r.status_code == 404 and "not associated" in r.json()["itemNotFound"]["message"], r.text
    # A group that does not exist fails the create at once (400), leaving no server.
    image_id = cli.json("image", "show", IMAGE_NAME)["id"]
    before = len(cli.json("server", "list"))
    r = nova(srv, "POST", "/servers", token, json={"server": {
        "name": unique("vm"), "imageRef": image_id, "flavorRef": "42", "networks": [{"uuid": net["id"]}],
        "security_groups": [{"name": "no-such-group"}]}})
    assert r.status_code == 400 and "no-such-group" in r.json()["badRequest"]["message"], r.text
    assert len(cli.json("server", "list")) == before
    cli.run("security", "group", "delete", sg["id"])
    # An interface attached on the network (a port made for it, bound to the host), listed
    # and shown as Nova does, then detached (its port deleted).
    cli.run("server", "add", "network", a["id"], net["id"])
    ifaces = nova(srv, "GET", f"/servers/{a['id']}/os-interface", token).json()["interfaceAttachments"]
    assert len(ifaces) == 2 and {i["net_id"] for i in ifaces} == {net["id"]}, ifaces
    extra = next(i for i in ifaces if i["port_id"] != port["id"])
    assert extra["fixed_ips"][0]["subnet_id"] and extra["mac_addr"], extra
    assert cli.json("port", "show", extra["port_id"])["binding_host_id"] == shown["OS-EXT-SRV-ATTR:host"]
    one = nova(srv, "GET", f"/servers/{a['id']}/os-interface/{extra['port_id']}", token).json()
    assert one["interfaceAttachment"]["port_id"] == extra["port_id"], one
    assert len(cli.json("server", "show", a["id"])["addresses"][net["name"]]) == 2
    bad = [({"interfaceAttachment": {"net_id": net["id"], "port_id": given["id"]}}, 400, "both"),
           ({"interfaceAttachment": {"fixed_ips": [{"ip_address": "10.60.0.77"}]}}, 400, "network_id"),
           ({"interfaceAttachment": {"port_id": given["id"]}}, 409, "in use"),
           ({"interfaceAttachment": {"net_id": "3f1c5a0e-8c1e-4f4e-9b0a-2d6c7e1f9a11"}}, 404, "could not be found"),
           ({"interfaceAttachment": {"port_id": "nope"}}, 400, "port_id")]
    for body, status, words in bad:
        r = nova(srv, "POST", f"/servers/{a['id']}/os-interface", token, json=body)
        assert r.status_code == status and words in r.text, (body, r.status_code, r.text)
    r = nova(srv, "DELETE", f"/servers/{a['id']}/os-interface/{given['id']}", token)
    assert r.status_code == 404 and "not attached" in r.text, r.text
    cli.run("server", "remove", "port", a["id"], extra["port_id"])
    wait_for(lambda: cli.run("port", "show", extra["port_id"], check=False).returncode != 0, 30, 0.5,
             what="the attached port deleted")
    assert len(cli.json("server", "show", a["id"])["addresses"][net["name"]]) == 1
    # A port in use cannot be given to another server; an unknown network is a 400.
    r = cli.run("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--port", given["id"],
                unique("vm"), check=False)
    assert r.returncode != 0 and "in use" in r.stderr, r.stderr
    # (The CLI looks networks up itself; the API is asked directly.)
    r = nova(srv, "POST", "/servers", token, json={"server": {
        "name": unique("vm"), "imageRef": image_id, "flavorRef": "42",
        "networks": [{"uuid": "3f1c5a0e-8c1e-4f4e-9b0a-2d6c7e1f9a11"}]}})
    assert r.status_code == 400 and "could not be found" in r.json()["badRequest"]["message"], r.text
    cli.run("server", "delete", "--wait", a["id"], b["id"])
    left = requests.get(srv.network_url + "/v2.0/ports", params={"device_id": a["id"]},
                        headers={"X-Auth-Token": token}, timeout=HTTP_TIMEOUT).json()["ports"]
    assert left == []
    kept = cli.json("port", "show", given["id"])
    assert kept["device_id"] == "" and kept["device_owner"] == ""
    cli.run("port", "delete", given["id"])
    cli.run("network", "delete", net["id"])
