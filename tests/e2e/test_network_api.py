"""The network API (Neutron v2.0) with the unmodified `openstack` CLI and plain HTTP: networks,
subnets and IPAM, ports, security groups, routers and floating IPs, and Neutron's codes and
messages for bad input. The data plane is not involved here."""
import concurrent.futures
import ipaddress

import pytest
import requests

from support import Api, Cli, HTTP_TIMEOUT, start_server, unique


@pytest.fixture(scope="module")
def net_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("network-server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def env(net_server):
    return Api(net_server), Cli(net_server)


def neutron(srv, method, path, token, **kw):
    return requests.request(method, srv.network_url + "/v2.0" + path, headers={"X-Auth-Token": token},
                            timeout=HTTP_TIMEOUT, **kw)


def assert_neutron_error(resp, status, kind=None):
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:400]}"
    err = resp.json()["NeutronError"]
    assert err["message"] and set(err) == {"type", "message", "detail"}, err
    if kind:
        assert err["type"] == kind, err


@pytest.fixture(scope="module")
def member(env):
    """A member of a project of its own: (token, cli env, project id)."""
    api, cli = env
    project = api.new_project()
    user, pw = api.new_user("member", project_id=project["id"])
    token = api.issue(user["name"], pw, project_id=project["id"])
    return token, cli.env(user=user["name"], password=pw, project=project["name"]), project["id"]


@pytest.fixture(scope="module")
def public(env):
    """An external network with a subnet, made by the admin as DevStack's `public`."""
    api, cli = env
    net = cli.json("network", "create", "--external", unique("public"))
    sub = cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "172.24.4.0/24",
                   "--gateway", "172.24.4.1", "--no-dhcp", unique("public-subnet"))
    return net, sub


def test_version_document_and_extension_list_agree(env, net_server):
    api, _ = env
    v = requests.get(net_server.network_url + "/", timeout=HTTP_TIMEOUT).json()
    assert [x["id"] for x in v["versions"]] == ["v2.0"] and v["versions"][0]["status"] == "CURRENT"
    exts = neutron(net_server, "GET", "/extensions", api.admin_token).json()["extensions"]
    aliases = {e["alias"] for e in exts}
    assert {"security-group", "router", "external-net", "quotas", "binding"} <= aliases
    one = neutron(net_server, "GET", "/extensions/router", api.admin_token).json()["extension"]
    assert one == next(e for e in exts if e["alias"] == "router")
    assert_neutron_error(neutron(net_server, "GET", "/extensions/no-such-thing", api.admin_token), 404)
    # Without a token: 401 with Neutron's body.
    r = requests.get(net_server.network_url + "/v2.0/networks", timeout=HTTP_TIMEOUT)
    assert r.status_code == 401


def test_a_project_builds_a_network_with_a_subnet_and_ports(env, member):
    api, cli = env
    _, menv, project = member
    net = cli.json("network", "create", unique("net"), env=menv)
    assert net["status"] == "ACTIVE" and net["mtu"] == 1450 and net["project_id"] == project
    # No DHCP: the network node's DHCP port would take an address of the pool first
    # (test_dataplane covers it).
    sub = cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "10.10.0.0/29", "--no-dhcp",
                   "--dns-nameserver", "10.10.0.53", unique("sub"), env=menv)
    assert sub["gateway_ip"] == "10.10.0.1"
    assert sub["allocation_pools"] == [{"start": "10.10.0.2", "end": "10.10.0.6"}]
    # Ports take the lowest free addresses of the pool; the project's default group guards them.
    p1 = cli.json("port", "create", "--network", net["id"], unique("port"), env=menv)
    p2 = cli.json("port", "create", "--network", net["id"], unique("port"), env=menv)
    ips = [p["fixed_ips"][0]["ip_address"] for p in (p1, p2)]
    assert ips == ["10.10.0.2", "10.10.0.3"]
    assert p1["mac_address"].startswith("fa:16:3e:")
    groups = cli.json("security", "group", "list", env=menv)
    default = [g for g in groups if g["Name"] == "default"]
    assert len(default) == 1 and p1["security_group_ids"] == [default[0]["ID"]]
    # A named address: taken is 409, outside the subnet 400.
    r = cli.run("port", "create", "--network", net["id"], "--fixed-ip", f"subnet={sub['id']},ip-address=10.10.0.2",
                unique("port"), env=menv, check=False)
    assert r.returncode != 0 and "already allocated" in r.stderr, r.stderr
    r = cli.run("port", "create", "--network", net["id"], "--fixed-ip", f"subnet={sub['id']},ip-address=10.10.1.9",
                unique("port"), env=menv, check=False)
    assert r.returncode != 0
    # The pool runs dry at five addresses: .2 to .6.
    for _ in range(3):
        cli.run("port", "create", "--network", net["id"], unique("port"), env=menv)
    r = cli.run("port", "create", "--network", net["id"], unique("port"), env=menv, check=False)
    assert r.returncode != 0 and "No more IP addresses" in r.stderr
    # A deleted port's address goes back to the pool.
    cli.run("port", "delete", p1["id"], env=menv)
    again = cli.json("port", "create", "--network", net["id"], unique("port"), env=menv)
    assert again["fixed_ips"][0]["ip_address"] == "10.10.0.2"
    # The network is in use while ports are on it.
    r = cli.run("network", "delete", net["id"], env=menv, check=False)
    assert r.returncode != 0 and "ports still in use" in r.stderr


def test_concurrent_ports_never_share_an_address(env, member, net_server):
    api, cli = env
    token, menv, _ = member
    net = neutron(net_server, "POST", "/networks", token, json={"network": {"name": unique("net")}}).json()["network"]
    r = neutron(net_server, "POST", "/subnets", token, json={"subnet": {
        "network_id": net["id"], "cidr": "10.20.0.0/24", "ip_version": 4}})
    assert r.status_code == 201, r.text

    def make(_):
        resp = neutron(net_server, "POST", "/ports", token, json={"port": {"network_id": net["id"]}})
        assert resp.status_code == 201, resp.text
        return resp.json()["port"]["fixed_ips"][0]["ip_address"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ips = list(pool.map(make, range(60)))
    assert len(set(ips)) == 60
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.20.0.0/24") for ip in ips)
    assert "10.20.0.1" not in ips  # the gateway


def test_bad_input_gets_neutrons_codes(env, member, net_server, public):
    api, cli = env
    token, _, _ = member
    net = neutron(net_server, "POST", "/networks", token, json={"network": {"name": unique("net")}}).json()["network"]
    ok = neutron(net_server, "POST", "/subnets", token, json={"subnet": {
        "network_id": net["id"], "cidr": "10.30.0.0/24", "ip_version": 4}})
    assert ok.status_code == 201
    # Overlap on one network; a malformed CIDR; pools outside the subnet; unknown attributes.
    assert_neutron_error(neutron(net_server, "POST", "/subnets", token, json={"subnet": {
        "network_id": net["id"], "cidr": "10.30.0.128/25", "ip_version": 4}}), 400)
    assert_neutron_error(neutron(net_server, "POST", "/subnets", token, json={"subnet": {
        "network_id": net["id"], "cidr": "10.31.0.0/33", "ip_version": 4}}), 400)
    assert_neutron_error(neutron(net_server, "POST", "/subnets", token, json={"subnet": {
        "network_id": net["id"], "cidr": "10.32.0.0/24", "ip_version": 4,
        "allocation_pools": [{"start": "10.33.0.2", "end": "10.33.0.9"}]}}), 400)
    assert_neutron_error(neutron(net_server, "POST", "/networks", token, json={"network": {"nmae": "x"}}), 400)
    assert_neutron_error(neutron(net_server, "POST", "/networks", token, data="{not json"), 400)
    # A port on another project's network: not found.
    other = neutron(net_server, "POST", "/networks", api.admin_token, json={"network": {"name": unique("net")}}).json()["network"]
    assert_neutron_error(neutron(net_server, "POST", "/ports", token, json={"port": {"network_id": other["id"]}}),
                         404, "NetworkNotFound")
    # Only admins share or make external networks.
    assert_neutron_error(neutron(net_server, "POST", "/networks", token, json={"network": {"shared": True}}), 403)
    # Floating IPs come from external networks only.
    assert_neutron_error(neutron(net_server, "POST", "/floatingips", token, json={"floatingip": {
        "floating_network_id": net["id"]}}), 400)
    # Two subnets that overlap may not both join one router.
    net2 = neutron(net_server, "POST", "/networks", token, json={"network": {"name": unique("net")}}).json()["network"]
    s2 = neutron(net_server, "POST", "/subnets", token, json={"subnet": {
        "network_id": net2["id"], "cidr": "10.30.0.0/24", "ip_version": 4}}).json()["subnet"]
    router = neutron(net_server, "POST", "/routers", token, json={"router": {"name": unique("r")}}).json()["router"]
    r = neutron(net_server, "PUT", f"/routers/{router['id']}/add_router_interface", token,
                json={"subnet_id": ok.json()["subnet"]["id"]})
    assert r.status_code == 200, r.text
    assert_neutron_error(neutron(net_server, "PUT", f"/routers/{router['id']}/add_router_interface", token,
                                 json={"subnet_id": s2["id"]}), 400)
    # Security group rules: bad protocol, ports out of range, duplicates.
    sg = neutron(net_server, "POST", "/security-groups", token, json={"security_group": {"name": unique("sg")}}).json()["security_group"]
    rule = {"security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}
    assert neutron(net_server, "POST", "/security-group-rules", token, json={"security_group_rule": rule}).status_code == 201
    assert_neutron_error(neutron(net_server, "POST", "/security-group-rules", token, json={"security_group_rule": rule}),
                         409, "SecurityGroupRuleExists")
    assert_neutron_error(neutron(net_server, "POST", "/security-group-rules", token, json={"security_group_rule": {
        **rule, "protocol": "bogus"}}), 400)
    assert_neutron_error(neutron(net_server, "POST", "/security-group-rules", token, json={"security_group_rule": {
        **rule, "port_range_min": 80, "port_range_max": 79}}), 400)
    # Unknown ids are 404s, never 500s.
    for path in ("/networks/nope", "/subnets/nope", "/ports/nope", "/routers/nope", "/floatingips/nope",
                 "/security-groups/nope", "/security-group-rules/nope"):
        assert_neutron_error(neutron(net_server, "GET", path, token), 404)


def test_router_gateway_interfaces_and_a_floating_ip(env, member, public):
    api, cli = env
    _, menv, project = member
    pub_net, pub_sub = public
    net = cli.json("network", "create", unique("net"), env=menv)
    sub = cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "10.40.0.0/24", unique("sub"), env=menv)
    router = cli.json("router", "create", unique("router"), env=menv)
    cli.run("router", "set", "--external-gateway", pub_net["id"], router["id"], env=menv)
    cli.run("router", "add", "subnet", router["id"], sub["id"], env=menv)
    shown = cli.json("router", "show", router["id"], env=menv)
    gw = shown["external_gateway_info"]
    assert gw["network_id"] == pub_net["id"] and gw["enable_snat"] is True
    assert ipaddress.ip_address(gw["external_fixed_ips"][0]["ip_address"]) in ipaddress.ip_network("172.24.4.0/24")
    ports = cli.json("port", "list", "--router", router["id"], "--long", env=menv)
    assert any(p["Fixed IP Addresses"] and "10.40.0.1" in str(p["Fixed IP Addresses"]) for p in ports)
    port = cli.json("port", "create", "--network", net["id"], unique("port"), env=menv)
    fip = cli.json("floating", "ip", "create", "--port", port["id"], pub_net["id"], env=menv)
    assert fip["port_id"] == port["id"] and fip["router_id"] == router["id"]
    assert fip["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    assert ipaddress.ip_address(fip["floating_ip_address"]) in ipaddress.ip_network("172.24.4.0/24")
    # The interface is in use by the floating IP; after the port goes, it is free again.
    r = cli.run("router", "remove", "subnet", router["id"], sub["id"], env=menv, check=False)
    assert r.returncode != 0
    cli.run("port", "delete", port["id"], env=menv)
    assert cli.json("floating", "ip", "show", fip["id"], env=menv)["port_id"] is None
    cli.run("floating", "ip", "delete", fip["id"], env=menv)
    cli.run("router", "remove", "subnet", router["id"], sub["id"], env=menv)
    cli.run("router", "unset", "--external-gateway", router["id"], env=menv)
    cli.run("router", "delete", router["id"], env=menv)
    cli.run("network", "delete", net["id"], env=menv)


def test_quotas_limit_networks(env, member, net_server):
    api, cli = env
    token, menv, project = member
    assert neutron(net_server, "POST", "/networks", token, json={"network": {}}).status_code == 201
    # Neutron's 2026.1 default: a project's quota is read by its managers and admins, not members.
    assert_neutron_error(neutron(net_server, "GET", f"/quotas/{project}/details", token), 403, "PolicyNotAuthorized")
    admin = api.admin_token
    used = neutron(net_server, "GET", f"/quotas/{project}/details", admin).json()["quota"]["network"]["used"]
    assert used >= 1
    cli.run("quota", "set", "--networks", str(used), project)
    q = neutron(net_server, "GET", f"/quotas/{project}/details", admin).json()["quota"]
    assert q["network"] == {"limit": used, "used": used, "reserved": 0}
    assert_neutron_error(neutron(net_server, "POST", "/networks", token, json={"network": {}}), 409, "OverQuota")
    assert neutron(net_server, "DELETE", f"/quotas/{project}", api.admin_token).status_code == 204
    assert neutron(net_server, "GET", f"/quotas/{project}", admin).json()["quota"]["network"] == 100


def test_tags_on_networks_subnets_and_ports(env, member, net_server):
    api, cli = env
    token, menv, _ = member
    net = cli.json("network", "create", "--tag", "blue", unique("net"), env=menv)
    assert net["tags"] == ["blue"]
    cli.run("network", "set", "--tag", "green", net["id"], env=menv)
    listed = cli.json("network", "list", "--tags", "green", env=menv)
    assert [n["ID"] for n in listed] == [net["id"]]
    sub = cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "10.50.0.0/24", unique("sub"), env=menv)
    port = cli.json("port", "create", "--network", net["id"], unique("port"), env=menv)
    for collection, rid in (("subnets", sub["id"]), ("ports", port["id"])):
        assert neutron(net_server, "PUT", f"/{collection}/{rid}/tags/red", token).status_code == 201
        assert neutron(net_server, "GET", f"/{collection}/{rid}/tags", token).json() == {"tags": ["red"]}
        assert neutron(net_server, "GET", f"/{collection}/{rid}/tags/red", token).status_code == 204
        assert neutron(net_server, "DELETE", f"/{collection}/{rid}/tags/red", token).status_code == 204
        assert_neutron_error(neutron(net_server, "GET", f"/{collection}/{rid}/tags/red", token), 404, "TagNotFound")
    # Another project does not see the port, nor its tags.
    project = api.new_project()
    user, pw = api.new_user("member", project_id=project["id"])
    other = api.issue(user["name"], pw, project_id=project["id"])
    assert_neutron_error(neutron(net_server, "GET", f"/ports/{port['id']}/tags", other), 404, "PortNotFound")


def test_rbac_policies_share_a_network_with_one_project(env, member, net_server):
    """`openstack network rbac create`: the owner shares its network with one project, which
    then sees it (`shared` true for it) and puts ports on it; the policy cannot go while that
    project's port is there; a third project never sees it. `--share` is the wildcard policy."""
    api, cli = env
    token, menv, project = member
    net = cli.json("network", "create", unique("owned"), env=menv)
    cli.json("subnet", "create", "--network", net["id"], "--subnet-range", "10.70.0.0/24", unique("sub"), env=menv)
    guest_project = api.new_project()
    user, pw = api.new_user("member", project_id=guest_project["id"])
    genv = cli.env(user=user["name"], password=pw, project=guest_project["name"])
    gtoken = api.issue(user["name"], pw, project_id=guest_project["id"])
    third = api.new_project()
    tuser, tpw = api.new_user("member", project_id=third["id"])
    ttoken = api.issue(tuser["name"], tpw, project_id=third["id"])
    assert_neutron_error(neutron(net_server, "GET", f"/networks/{net['id']}", gtoken), 404, "NetworkNotFound")

    policy = cli.json("network", "rbac", "create", "--type", "network", "--action", "access_as_shared",
                      "--target-project", guest_project["id"], net["id"], env=menv)
    assert policy["object_id"] == net["id"] and policy["target_project_id"] == guest_project["id"]
    assert [p["ID"] for p in cli.json("network", "rbac", "list", env=menv)] == [policy["id"]]
    seen = neutron(net_server, "GET", f"/networks/{net['id']}", gtoken).json()["network"]
    assert seen["shared"] is True
    assert neutron(net_server, "GET", f"/networks/{net['id']}", token).json()["network"]["shared"] is False
    port = cli.json("port", "create", "--network", net["id"], unique("port"), env=genv)
    assert port["project_id"] == guest_project["id"]
    # Only the owner's projects see the policy; sharing with everyone is the admin's.
    assert_neutron_error(neutron(net_server, "GET", f"/rbac-policies/{policy['id']}", gtoken), 404)
    r = neutron(net_server, "POST", "/rbac-policies", token, json={"rbac_policy": {
        "object_type": "network", "object_id": net["id"], "action": "access_as_shared", "target_tenant": "*"}})
    assert_neutron_error(r, 403)
    r = neutron(net_server, "POST", "/rbac-policies", token, json={"rbac_policy": {
        "object_type": "network", "object_id": net["id"], "action": "access_as_shared",
        "target_tenant": guest_project["id"]}})
    assert_neutron_error(r, 409, "DuplicateRbacPolicy")
    assert_neutron_error(neutron(net_server, "GET", f"/networks/{net['id']}", ttoken), 404)
    # In use by the guest project's port: 409 until the port goes.
    assert_neutron_error(neutron(net_server, "DELETE", f"/rbac-policies/{policy['id']}", token), 409, "RbacPolicyInUse")
    cli.run("port", "delete", port["id"], env=genv)
    cli.run("network", "rbac", "delete", policy["id"], env=menv)
    assert_neutron_error(neutron(net_server, "GET", f"/networks/{net['id']}", gtoken), 404)
    # `--share` (admin) is the wildcard policy, and deleting that policy unshares.
    cli.run("network", "set", "--share", net["id"])
    wildcard = [p for p in cli.json("network", "rbac", "list", "--long") if p["Object ID"] == net["id"]]
    assert len(wildcard) == 1 and cli.json("network", "rbac", "show", wildcard[0]["ID"])["target_project_id"] == "*"
    assert neutron(net_server, "GET", f"/networks/{net['id']}", ttoken).json()["network"]["shared"] is True
    cli.run("network", "rbac", "delete", wildcard[0]["ID"])
    assert cli.json("network", "show", net["id"])["shared"] is False
    cli.run("network", "delete", net["id"], env=menv)


def test_network_availability_zones(env, member, net_server):
    """`openstack availability zone list --network`: the one zone, for networks and routers;
    a hint naming no zone is Neutron's 404."""
    api, cli = env
    token, menv, project = member
    zones = cli.json("availability", "zone", "list", "--network", "--long")
    assert sorted((z["Zone Name"], z["Zone Resource"], z["Zone Status"]) for z in zones) == [
        ("nova", "network", "available"), ("nova", "router", "available")], zones
    net = cli.json("network", "create", "--availability-zone-hint", "nova", unique("az"), env=menv)
    assert net["availability_zone_hints"] == ["nova"] and net["availability_zones"] == ["nova"]
    r = neutron(net_server, "POST", "/networks", token,
                json={"network": {"name": unique("az"), "availability_zone_hints": ["elsewhere"]}})
    assert_neutron_error(r, 404, "AvailabilityZoneNotFound")
    cli.run("network", "delete", net["id"], env=menv)


def test_service_providers_name_the_routers(env):
    _, cli = env
    providers = cli.json("network", "service", "provider", "list")
    assert providers == [{"Service Type": "L3_ROUTER_NAT", "Name": "single_node", "Default": True}], providers
