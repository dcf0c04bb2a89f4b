"""Placement with the unmodified `openstack` CLI (osc-placement) and raw requests: providers,
inventories, classes, traits, aggregates, allocations, usages, allocation candidates, the
reshaper; placement's error codes; and concurrent claims that never overcommit."""
import concurrent.futures
import uuid

import pytest
import requests

from support import Api, Cli, HTTP_TIMEOUT, unique


def new_uuid():
    return str(uuid.uuid4())


class Placement:
    def __init__(self, srv, token):
        self.srv, self.token = srv, token

    def __call__(self, method, path, version="1.39", json=None, token=None, headers=None, **kw):
        headers = {"X-Auth-Token": token or self.token, "OpenStack-API-Version": f"placement {version}",
                   **(headers or {})}
        return requests.request(method, self.srv.placement_url + path, headers=headers, json=json,
                                timeout=HTTP_TIMEOUT, **kw)


@pytest.fixture(scope="module")
def place(module_server):
    return Placement(module_server, Api(module_server).admin_token)


@pytest.fixture(scope="module")
def pcli(module_server):
    return Cli(module_server)


def error_code(resp):
    return resp.json()["errors"][0]["code"]


def provider(place, name=None, parent=None, inventories=None, traits=None):
    body = {"name": name or unique("rp")}
    if parent:
        body["parent_provider_uuid"] = parent
    r = place("POST", "/resource_providers", json=body)
    assert r.status_code == 200, r.text
    rp = r.json()
    if inventories:
        r = place("PUT", f"/resource_providers/{rp['uuid']}/inventories",
                  json={"inventories": inventories, "resource_provider_generation": rp["generation"]})
        assert r.status_code == 200, r.text
        rp["generation"] = r.json()["resource_provider_generation"]
    if traits:
        r = place("PUT", f"/resource_providers/{rp['uuid']}/traits",
                  json={"traits": traits, "resource_provider_generation": rp["generation"]})
        assert r.status_code == 200, r.text
    return rp["uuid"]


def test_the_compute_host_is_a_provider_with_its_resources(pcli):
    rps = pcli.json("resource", "provider", "list")
    assert rps, "the compute host registers itself"
    host = rps[0]["uuid"]
    inv = {i["resource_class"]: i for i in pcli.json("resource", "provider", "inventory", "list", host)}
    assert set(inv) == {"VCPU", "MEMORY_MB", "DISK_GB"}
    assert inv["VCPU"]["allocation_ratio"] == 4.0 and inv["VCPU"]["total"] >= 1
    assert inv["MEMORY_MB"]["reserved"] == 512
    traits = pcli.value("resource", "provider", "trait", "list", host).split()
    assert "COMPUTE_NODE" in traits and "HW_ARCH_X86_64" in traits


def test_cli_manages_providers_inventories_traits_and_aggregates(pcli):
    name = unique("rp")
    rp = pcli.json("resource", "provider", "create", name)
    u = rp["uuid"]
    assert rp["name"] == name and rp["generation"] == 0 and rp["root_provider_uuid"] == u
    child = pcli.json("resource", "provider", "create", "--parent-provider", u, unique("child"))
    assert child["parent_provider_uuid"] == u and child["root_provider_uuid"] == u
    tree = {p["uuid"] for p in pcli.json("resource", "provider", "list", "--in-tree", u)}
    assert tree == {u, child["uuid"]}

    pcli.run("resource", "provider", "inventory", "set", u, "--resource", "VCPU=8", "--resource", "MEMORY_MB=4096",
             "--resource", "VCPU:allocation_ratio=2.0", "--resource", "MEMORY_MB:reserved=512")
    pcli.run("resource", "provider", "inventory", "set", u, "--amend", "--resource", "DISK_GB=100")
    inv = {i["resource_class"]: i for i in pcli.json("resource", "provider", "inventory", "list", u)}
    assert set(inv) == {"VCPU", "MEMORY_MB", "DISK_GB"}
    assert inv["VCPU"]["allocation_ratio"] == 2.0 and inv["MEMORY_MB"]["reserved"] == 512
    assert inv["DISK_GB"]["max_unit"] == 2147483647 and inv["DISK_GB"]["used"] == 0
    shown = pcli.json("resource", "provider", "inventory", "show", u, "DISK_GB")
    assert shown["total"] == 100
    pcli.run("resource", "provider", "inventory", "delete", u, "--resource-class", "DISK_GB")
    assert {i["resource_class"] for i in pcli.json("resource", "provider", "inventory", "list", u)} == {"VCPU", "MEMORY_MB"}

    cls = "CUSTOM_" + unique("GPU").upper().replace("-", "_")
    pcli.run("resource", "class", "create", cls)
    assert cls in pcli.value("resource", "class", "list").split()
    trait = "CUSTOM_" + unique("FAST").upper().replace("-", "_")
    pcli.run("trait", "create", trait)
    assert pcli.value("trait", "list", "--name", f"in:{trait}") == trait
    pcli.run("resource", "provider", "trait", "set", u, "--trait", trait, "--trait", "HW_CPU_X86_AVX2")
    assert set(pcli.value("resource", "provider", "trait", "list", u).split()) == {trait, "HW_CPU_X86_AVX2"}
    assert trait in pcli.value("trait", "list", "--associated").split()
    # The trait is in use: placement refuses to delete it.
    p = pcli.run("trait", "delete", trait, check=False)
    assert p.returncode != 0 and "in use" in p.stderr

    agg = new_uuid()
    gen = pcli.json("resource", "provider", "show", u)["generation"]
    pcli.run("--os-placement-api-version", "1.19", "resource", "provider", "aggregate", "set", u,
             "--aggregate", agg, "--generation", str(gen))
    assert pcli.value("resource", "provider", "aggregate", "list", u) == agg
    members = {p["uuid"] for p in pcli.json("resource", "provider", "list", "--member-of", agg)}
    assert members == {u}

    pcli.run("resource", "provider", "set", u, "--name", name + "-renamed")
    assert pcli.json("resource", "provider", "show", u)["name"] == name + "-renamed"
    p = pcli.run("resource", "provider", "delete", u, check=False)
    assert p.returncode != 0 and "child resource providers" in p.stderr
    pcli.run("resource", "provider", "delete", child["uuid"])
    pcli.run("resource", "provider", "trait", "delete", u)
    pcli.run("trait", "delete", trait)
    pcli.run("resource", "provider", "delete", u)
    pcli.run("resource", "class", "delete", cls)
    assert u not in {p["uuid"] for p in pcli.json("resource", "provider", "list")}


def test_cli_allocations_candidates_and_usages(pcli):
    u = pcli.json("resource", "provider", "create", unique("rp"))["uuid"]
    pcli.run("resource", "provider", "inventory", "set", u, "--resource", "VCPU=4", "--resource", "MEMORY_MB=2048",
             "--resource", "VCPU:allocation_ratio=4.0")
    pcli.run("resource", "provider", "trait", "set", u, "--trait", "HW_CPU_X86_SSE42")
    cands = pcli.json("allocation", "candidate", "list", "--resource", "VCPU=2", "--resource", "MEMORY_MB=512",
                      "--required", "HW_CPU_X86_SSE42")
    assert [c["resource provider"] for c in cands] == [u]
    assert "VCPU=0/16" in cands[0]["inventory used/capacity"]
    forbidden = pcli.json("allocation", "candidate", "list", "--resource", "VCPU=2", "--forbidden", "HW_CPU_X86_SSE42")
    assert u not in [c["resource provider"] for c in forbidden]

    consumer, project, user = new_uuid(), new_uuid(), new_uuid()
    pcli.run("resource", "provider", "allocation", "set", consumer, "--allocation", f"rp={u},VCPU=2,MEMORY_MB=512",
             "--project-id", project, "--user-id", user)
    shown = pcli.json("resource", "provider", "allocation", "show", consumer)
    assert shown[0]["resources"] == {"VCPU": 2, "MEMORY_MB": 512} and shown[0]["project_id"] == project
    usage = {x["resource_class"]: x["usage"] for x in pcli.json("resource", "provider", "usage", "show", u)}
    assert usage == {"VCPU": 2, "MEMORY_MB": 512}
    usage = {x["resource_class"]: x["usage"] for x in pcli.json("resource", "usage", "show", project)}
    assert usage == {"VCPU": 2, "MEMORY_MB": 512}
    # Over capacity (16 VCPU with the ratio): refused, nothing changes.
    p = pcli.run("resource", "provider", "allocation", "set", consumer, "--allocation", f"rp={u},VCPU=17",
                 "--project-id", project, "--user-id", user, check=False)
    assert p.returncode != 0 and "exceed the capacity" in p.stderr
    assert pcli.json("resource", "provider", "allocation", "show", consumer)[0]["resources"]["VCPU"] == 2
    p = pcli.run("resource", "provider", "delete", u, check=False)
    assert p.returncode != 0 and "has allocations" in p.stderr
    pcli.run("resource", "provider", "allocation", "unset", consumer, "--provider", u, "--resource-class", "MEMORY_MB")
    assert pcli.json("resource", "provider", "allocation", "show", consumer)[0]["resources"] == {"VCPU": 2}
    pcli.run("resource", "provider", "allocation", "delete", consumer)
    assert pcli.json("resource", "provider", "allocation", "show", consumer) == []
    pcli.run("resource", "provider", "delete", u)


def test_generations_guard_concurrent_writers(place):
    u = provider(place, inventories={"VCPU": {"total": 4}})
    stale = 0
    r = place("PUT", f"/resource_providers/{u}/inventories",
              json={"inventories": {"VCPU": {"total": 8}}, "resource_provider_generation": stale})
    assert r.status_code == 409 and error_code(r) == "placement.concurrent_update"
    assert place("GET", f"/resource_providers/{u}/inventories").json()["inventories"]["VCPU"]["total"] == 4
    consumer = new_uuid()
    body = {"allocations": {u: {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u",
            "consumer_generation": None, "consumer_type": "INSTANCE"}
    assert place("PUT", f"/allocations/{consumer}", json=body).status_code == 204
    # A second writer that also believes the consumer is new loses.
    r = place("PUT", f"/allocations/{consumer}", json=body)
    assert r.status_code == 409 and error_code(r) == "placement.concurrent_update"
    got = place("GET", f"/allocations/{consumer}").json()
    assert got["consumer_generation"] == 1 and got["consumer_type"] == "INSTANCE"
    body["consumer_generation"] = 1
    body["allocations"] = {}
    assert place("PUT", f"/allocations/{consumer}", json=body).status_code == 204
    assert place("GET", f"/allocations/{consumer}").json() == {"allocations": {}}
    assert place("DELETE", f"/resource_providers/{u}").status_code == 204


def test_concurrent_claims_never_overcommit(place):
    u = provider(place, inventories={"VCPU": {"total": 10}})

    def claim(_):
        body = {"allocations": {u: {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u",
                "consumer_generation": None, "consumer_type": "INSTANCE"}
        return place("PUT", f"/allocations/{new_uuid()}", json=body).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(claim, range(30)))
    assert codes.count(204) == 10 and codes.count(409) == 20, codes
    assert place("GET", f"/resource_providers/{u}/usages").json()["usages"] == {"VCPU": 10}
    for consumer in place("GET", f"/resource_providers/{u}/allocations").json()["allocations"]:
        assert place("DELETE", f"/allocations/{consumer}").status_code == 204
    assert place("DELETE", f"/resource_providers/{u}").status_code == 204


def test_nested_granular_candidates_with_mappings(place):
    host = provider(place, inventories={"VCPU": {"total": 4}, "MEMORY_MB": {"total": 4096}})
    agg = new_uuid()
    g = place("GET", f"/resource_providers/{host}").json()["generation"]
    assert place("PUT", f"/resource_providers/{host}/aggregates",
                 json={"aggregates": [agg], "resource_provider_generation": g}).status_code == 200
    gpus = [provider(place, parent=host, inventories={"VGPU": {"total": 1}}, traits=["HW_GPU_API_VULKAN"])
            for _ in range(2)]
    q = {"resources": "VCPU:1", "resources_A": "VGPU:1", "resources_B": "VGPU:1", "group_policy": "isolate",
         "member_of": agg}
    r = place("GET", "/allocation_candidates", params=q)
    assert r.status_code == 200, r.text
    reqs = r.json()["allocation_requests"]
    assert len(reqs) == 2
    for req in reqs:
        assert req["mappings"][""] == [host]
        assert {req["mappings"]["_A"][0], req["mappings"]["_B"][0]} == set(gpus)
    summaries = r.json()["provider_summaries"]
    assert set(summaries) == {host, *gpus}
    assert summaries[gpus[0]]["parent_provider_uuid"] == host
    # Before 1.29 a candidate is one provider: none here.
    r = place("GET", "/allocation_candidates", version="1.28",
              params={"resources": "VCPU:1,VGPU:1"})
    assert r.json()["allocation_requests"] == []
    r = place("GET", "/allocation_candidates", params={"resources": "VCPU:1", "required": "!HW_GPU_API_VULKAN"})
    assert host in [list(a["allocations"])[0] for a in r.json()["allocation_requests"]]
    for rp in gpus + [host]:
        assert place("DELETE", f"/resource_providers/{rp}").status_code == 204


def test_reshaper_moves_inventory_and_allocations_together(place):
    host = provider(place, inventories={"VGPU": {"total": 2}})
    child = provider(place, parent=host)
    consumer = new_uuid()
    assert place("PUT", f"/allocations/{consumer}", json={
        "allocations": {host: {"resources": {"VGPU": 1}}}, "project_id": "p", "user_id": "u",
        "consumer_generation": None, "consumer_type": "INSTANCE"}).status_code == 204
    gens = {rp: place("GET", f"/resource_providers/{rp}").json()["generation"] for rp in (host, child)}
    r = place("POST", "/reshaper", json={
        "inventories": {host: {"inventories": {}, "resource_provider_generation": gens[host]},
                        child: {"inventories": {"VGPU": {"total": 2}}, "resource_provider_generation": gens[child]}},
        "allocations": {consumer: {"allocations": {child: {"resources": {"VGPU": 1}}}, "project_id": "p",
                                   "user_id": "u", "consumer_generation": 1, "consumer_type": "INSTANCE"}}})
    assert r.status_code == 204, r.text
    assert list(place("GET", f"/allocations/{consumer}").json()["allocations"]) == [child]
    assert place("GET", f"/resource_providers/{host}/inventories").json()["inventories"] == {}
    assert place("DELETE", f"/allocations/{consumer}").status_code == 204
    for rp in (child, host):
        assert place("DELETE", f"/resource_providers/{rp}").status_code == 204


def test_bad_requests_get_placement_errors(place, module_server):
    u = provider(place, inventories={"VCPU": {"total": 2}})
    cases = [
        (place("GET", "/resource_providers/" + new_uuid()), 404, "No resource provider with uuid"),
        (place("POST", "/resource_providers", json={"name": "x" * 201}), 400, "JSON does not validate"),
        (place("POST", "/resource_providers", json={"name": "a", "bogus": 1}), 400, "'bogus' was unexpected"),
        (place("GET", "/resource_providers", params={"bogus": "1"}), 400, "Invalid query string parameters"),
        (place("GET", "/resource_providers", params={"resources": "VCPU"}), 400, "Badly formed resources"),
        (place("GET", "/resource_providers", params={"required": "CUSTOM_NOPE"}), 400, "No such trait"),
        (place("PUT", f"/resource_providers/{u}/inventories",
               json={"inventories": {"NOPE": {"total": 1}}, "resource_provider_generation": 1}), 400,
         "No such resource class NOPE"),
        (place("PUT", f"/resource_providers/{u}/inventories",
               json={"inventories": {"VCPU": {"total": 1, "reserved": 2}}, "resource_provider_generation": 1}), 400,
         "reserved value is greater"),
        (place("PUT", f"/allocations/{new_uuid()}", json={
            "allocations": {u: {"resources": {"VCPU": 3}}}, "project_id": "p", "user_id": "u",
            "consumer_generation": None, "consumer_type": "INSTANCE"}), 409, "exceed the capacity"),
        (place("PUT", f"/allocations/{new_uuid()}", json={
            "allocations": {new_uuid(): {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u",
            "consumer_generation": None, "consumer_type": "INSTANCE"}), 400, "that does not exist"),
        (place("PUT", "/allocations/not-a-uuid", json={}), 400, ""),
        (place("GET", "/allocation_candidates", params={"resources": "VCPU:1", "resources1": "VCPU:1",
                                                        "resources2": "VCPU:1"}), 400, "group_policy"),
        (place("GET", "/allocation_candidates", params={"limit": "0", "resources": "VCPU:1"}), 400, "limit"),
        (place("PUT", "/traits/NOT_CUSTOM"), 400, "The trait is invalid"),
        (place("DELETE", "/traits/HW_CPU_X86_AVX"), 400, "Cannot delete standard trait"),
        (place("POST", "/resource_classes", json={"name": "VCPU"}), 400, "CUSTOM_"),
        (place("DELETE", "/resource_classes/VCPU"), 400, "standard resource class"),
        (place("PUT", f"/resource_providers/{u}", data="{", headers={"Content-Type": "application/json"}), 400, ""),
    ]
    for resp, status, text in cases:
        assert resp.status_code == status, (resp.request.method, resp.request.url, resp.status_code, resp.text)
        err = resp.json()["errors"][0]
        assert err["status"] == status and text in err["detail"], resp.text
        assert err["code"].startswith("placement."), resp.text
    # Versions: outside the range a 406 that names the range; no token a 401; a member a 403.
    r = place("GET", "/resource_providers", version="1.40")
    assert r.status_code == 406 and r.json()["errors"][0]["max_version"] == "1.39"
    r = place("GET", "/resource_providers", version="latest")
    assert r.headers["openstack-api-version"] == "placement 1.39"
    r = requests.get(module_server.placement_url + "/resource_providers", timeout=HTTP_TIMEOUT)
    assert r.status_code == 401
    assert requests.get(module_server.placement_url + "/", timeout=HTTP_TIMEOUT).json()["versions"][0]["max_version"] == "1.39"
    api = Api(module_server)
    project = api.new_project()
    user, password = api.new_user(role="member", project_id=project["id"])
    member = api.issue(user["name"], password, project_id=project["id"])
    r = place("GET", "/resource_providers", token=member)
    assert r.status_code == 403 and "placement:resource_providers:list" in r.json()["errors"][0]["detail"]
    assert place("DELETE", f"/resource_providers/{u}").status_code == 204
