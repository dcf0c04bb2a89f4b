"""The network data plane end to end, with the unmodified `openstack` CLI: two guests on a
private network behind a router, in the test cloud's own host namespace (harness.Server makes
it; nothing here touches the machine's network). They get their addresses by DHCP and their
metadata and keys from 169.254.169.254 on every boot, reach each other and the external side
(through SNAT), answer on a floating IP, and a security group lets exactly what it allows in.
Deleting everything leaves no namespace, bridge, tap, iptables chain or dnsmasq behind."""
import contextlib
import hashlib
import os
import re
import socket
import subprocess
import time

import pytest
import requests

from harness import Agent
from support import HTTP_TIMEOUT, Api, Cli, start_server, unique, wait_for
from test_servers import IMAGE_NAME, console, prepare

EXTERNAL_GW = "172.24.4.1"
# The underlay between the cloud's host and a second host (addresses inside their namespaces).
UNDERLAY = ("192.0.2.1", "192.0.2.2")
SEEN_PORT = 8000
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]

# Answers every GET with the address it came from: what the external side sees of a guest.
SEEN_SERVER = f"""
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("seen-as " + self.client_address[0] + "\\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("{EXTERNAL_GW}", {SEEN_PORT}), H).serve_forever()
"""


def console_file(srv, cli, name):
    """The guest's console log as the host keeps it (cheaper to poll than the CLI, which the
    checks still use)."""
    sid = name if name.count("-") == 4 else cli.json("server", "show", name)["id"]
    try:
        with open(os.path.join(srv.data_dir, "instances", sid, "console.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dataplane")
    # Its tunnels (VXLAN to a second host, see the last test) start from this address, on
    # an underlay link that test makes between the two hosts' namespaces.
    srv = start_server(tmp / "data", extra_env={"HANEUL_NETWORK__LOCAL_IP": UNDERLAY[0]})
    seen = None
    try:
        prepare(srv, tmp)
        cli = Cli(srv)
        cli.run("network", "create", "--external", "--provider-network-type", "flat",
                "--provider-physical-network", "public", "public")
        cli.run("subnet", "create", "--network", "public", "--subnet-range", "172.24.4.0/24", "--no-dhcp",
                "--gateway", EXTERNAL_GW, "public-subnet")
        cli.run("network", "create", "private")
        cli.run("subnet", "create", "--network", "private", "--subnet-range", "10.10.0.0/24", "private-subnet")
        cli.run("router", "create", "router1")
        cli.run("router", "set", "--external-gateway", "public", "router1")
        cli.run("router", "add", "subnet", "router1", "private-subnet")
        cli.run("security group", "create", "web")
        rules = {}
        for proto, port in (("icmp", None), ("tcp", "22")):
            args = ["security", "group", "rule", "create", "--protocol", proto]
            if port:
                args += ["--dst-port", port]
            rules[proto] = cli.json(*args, "web")["id"]
        # The external side: an HTTP server at the host's gateway address that tells guests
        # what address their request came from.
        wait_for(lambda: EXTERNAL_GW in srv.in_host("ip", "-4", "addr", capture_output=True, text=True).stdout,
                 20, 0.2, what="the host-side gateway address")
        seen = subprocess.Popen(["ip", "netns", "exec", srv.netns, "python3", "-c", SEEN_SERVER])
        user_data = tmp / "ud.sh"
        user_data.write_text(f"#!/bin/sh\nwget -q -O- http://{EXTERNAL_GW}:{SEEN_PORT}/ 2>&1 | sed 's/^/EXTERNAL: /'\n")
        for name in ("vm1", "vm2"):
            cli.run("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--network", "private",
                    "--security-group", "web", "--key-name", "k1", "--user-data", str(user_data), name)
        for name in ("vm1", "vm2"):
            wait_for(lambda: cli.json("server", "show", name)["status"] == "ACTIVE", 120, 1, what=f"{name} ACTIVE")
        fip = cli.json("floating", "ip", "create", "public")["floating_ip_address"]
        cli.run("server", "add", "floating", "ip", "vm1", fip)
        yield srv, cli, tmp, fip, rules
    finally:
        if seen:
            seen.kill()
            seen.wait()
        srv.stop()


def fixed_ip(cli, name):
    return cli.json("server", "show", name)["addresses"]["private"][0]


def ssh(srv, tmp, ip, command, timeout=30):
    return srv.in_host("ssh", "-i", str(tmp / "id"), *SSH_OPTS, f"root@{ip}", command,
                       capture_output=True, text=True, timeout=timeout)


def tcp_open(srv, ip, port):
    code = f"import socket; s=socket.socket(); s.settimeout(3); s.connect(({ip!r}, {port})); print('open')"
    return srv.in_host("python3", "-c", code, capture_output=True, text=True, timeout=15).stdout.strip() == "open"


def pings(srv, ip):
    return srv.in_host("ping", "-c", "1", "-W", "2", ip, capture_output=True).returncode == 0


def test_guests_get_dhcp_addresses_and_metadata_and_their_ports_go_active(cloud):
    srv, cli, tmp, fip, rules = cloud
    for name in ("vm1", "vm2"):
        ip = fixed_ip(cli, name)
        assert re.fullmatch(r"10\.10\.0\.\d+", ip), ip
        sid = cli.json("server", "show", name)["id"]
        wait_for(lambda: "HANEUL-TESTIMG: ready" in console_file(srv, cli, sid), 120, 0.5, what=f"{name} booted")
        log = console(cli, name)
        for marker in (f"HANEUL-TESTIMG: address {ip}/24 router=10.10.0.1 mtu=1450",
                       "HANEUL-TESTIMG: metadata metadata-service", "HANEUL-TESTIMG: key installed k1"):
            assert marker in log, log[-2000:]
    ports = cli.json("port", "list", "--network", "private", "--long")
    owners = sorted(p["Device Owner"] for p in ports)
    assert owners == ["compute:nova", "compute:nova", "network:dhcp", "network:router_interface"], owners
    wait_for(lambda: all(p["Status"] == "ACTIVE" for p in cli.json("port", "list", "--network", "private")), 20, 0.5,
             what="the private network's ports ACTIVE")


def test_a_servers_addresses_show_its_floating_ips_while_it_has_them(cloud):
    """The network service tells the compute service (Nova's network-changed event) when a
    floating IP is associated or let go: `addresses` lists it as `OS-EXT-IPS:type: floating`."""
    srv, cli, _, fip, _ = cloud
    addresses = lambda name: cli.json("server", "show", name)["addresses"]["private"]  # noqa: E731
    wait_for(lambda: fip in addresses("vm1"), 15, 0.2, what="vm1's floating IP in its addresses")
    sid = cli.json("server", "show", "vm1")["id"]
    api = Api(srv)
    shown = requests.get(f"{srv.compute_url}/servers/{sid}", headers={"X-Auth-Token": api.admin_token},
                         timeout=HTTP_TIMEOUT).json()["server"]["addresses"]["private"]
    assert [a["OS-EXT-IPS:type"] for a in shown] == ["fixed", "floating"], shown
    assert shown[1]["addr"] == fip and shown[1]["OS-EXT-IPS-MAC:mac_addr"] == shown[0]["OS-EXT-IPS-MAC:mac_addr"]
    second = cli.json("floating", "ip", "create", "public")["floating_ip_address"]
    try:
        cli.run("server", "add", "floating", "ip", "vm2", second)
        wait_for(lambda: second in addresses("vm2"), 15, 0.2, what="vm2's floating IP in its addresses")
        cli.run("server", "remove", "floating", "ip", "vm2", second)
        wait_for(lambda: second not in addresses("vm2"), 15, 0.2, what="vm2's floating IP gone from its addresses")
    finally:
        cli.run("floating", "ip", "delete", second)


def test_openstacksdk_create_server_with_auto_ip_gets_its_floating_ip(cloud):
    """openstacksdk's `create_server(auto_ip=True)` makes and associates a floating IP and
    waits until the server's addresses show it."""
    import openstack

    srv, _, _, _, _ = cloud
    conn = openstack.connect(auth_url=srv.auth_url, username="admin", password=srv.admin_password,
                             project_name="admin", user_domain_name="Default", project_domain_name="Default",
                             region_name="RegionOne", identity_api_version="3")
    server = conn.create_server(unique("sdk-vm"), image=IMAGE_NAME, flavor="m1.nano", network="private",
                                auto_ip=True, wait=True, timeout=180)
    try:
        floating = [a["addr"] for a in server.addresses["private"] if a["OS-EXT-IPS:type"] == "floating"]
        assert len(floating) == 1 and floating[0].startswith("172.24.4."), server.addresses
    finally:
        conn.delete_server(server.id, wait=True, delete_ips=True, timeout=120)


def test_the_floating_ip_answers_from_the_external_side_and_guests_reach_each_other(cloud):
    srv, cli, tmp, fip, rules = cloud
    wait_for(lambda: ssh(srv, tmp, fip, "true").returncode == 0, 60, 1, what="ssh to the floating IP")
    vm2 = fixed_ip(cli, "vm2")
    out = ssh(srv, tmp, fip, f"ping -c 2 -W 2 {vm2} >/dev/null && echo reached; hostname")
    assert out.stdout.split() == ["reached", "vm1"], (out.stdout, out.stderr)
    # An address the port does not have is not let out (IP and ARP anti-spoofing).
    out = ssh(srv, tmp, fip, f"ip addr add 10.10.0.250/24 dev eth0; ping -I 10.10.0.250 -c 2 -W 2 {vm2} >/dev/null"
                             f" && echo spoofed; ip addr del 10.10.0.250/24 dev eth0; echo done")
    assert out.stdout.split() == ["done"], (out.stdout, out.stderr)
    # The guest with a floating IP goes out as that address; the one without as the router.
    out = ssh(srv, tmp, fip, f"wget -q -O- http://{EXTERNAL_GW}:{SEEN_PORT}/")
    assert out.stdout.strip() == f"seen-as {fip}", (out.stdout, out.stderr)
    gateway_ip = cli.json("router", "show", "router1")["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    sid = cli.json("server", "show", "vm2")["id"]
    wait_for(lambda: "EXTERNAL: seen-as" in console_file(srv, cli, sid), 60, 0.5, what="vm2's user data")
    assert f"EXTERNAL: seen-as {gateway_ip}" in console(cli, "vm2")


def test_a_port_forwarding_reaches_a_guest_port_through_a_floating_ip(cloud):
    """`openstack floating ip port forwarding create`: TCP 2222 of a second floating IP goes
    to vm2's SSH port; that floating IP cannot also point at a port; deleting the forwarding
    closes it; a range (2221:2222 onto 21:22) forwards port by port."""
    srv, cli, tmp, fip, rules = cloud
    vm2 = fixed_ip(cli, "vm2")
    port = cli.json("port", "list", "--server", "vm2")[0]["ID"]
    fip2 = cli.json("floating", "ip", "create", "public")
    addr = fip2["floating_ip_address"]
    pf = cli.json("floating", "ip", "port", "forwarding", "create", "--internal-ip-address", vm2, "--port", port,
                  "--internal-protocol-port", "22", "--external-protocol-port", "2222", "--protocol", "tcp",
                  fip2["id"])
    assert (pf["internal_port"], pf["external_port"], pf["protocol"]) == (22, 2222, "tcp"), pf

    def hostname_via_forwarding():
        return srv.in_host("ssh", "-p", "2222", "-i", str(tmp / "id"), *SSH_OPTS, f"root@{addr}", "hostname",
                           capture_output=True, text=True, timeout=30).stdout.strip()
    wait_for(lambda: hostname_via_forwarding() == "vm2", 60, 1, what="ssh through the port forwarding")
    assert not tcp_open(srv, addr, 22)
    r = cli.run("floating", "ip", "set", "--port", port, fip2["id"], check=False)
    assert r.returncode != 0 and "Port Forwarding" in r.stderr, r.stderr
    cli.run("floating", "ip", "port", "forwarding", "delete", fip2["id"], pf["id"])
    wait_for(lambda: not tcp_open(srv, addr, 2222), 10, 0.2, what="the forwarded port to close")
    # A range onto a range of the same size, port by port: 2221:2222 → 21:22, so 2222 is SSH.
    pf = cli.json("floating", "ip", "port", "forwarding", "create", "--internal-ip-address", vm2, "--port", port,
                  "--internal-protocol-port", "21:22", "--external-protocol-port", "2221:2222", "--protocol", "tcp",
                  fip2["id"])
    assert (pf["internal_port_range"], pf["external_port_range"]) == ("21:22", "2221:2222"), pf
    wait_for(lambda: hostname_via_forwarding() == "vm2", 60, 1, what="ssh through the forwarded range")
    cli.run("floating", "ip", "port", "forwarding", "delete", fip2["id"], pf["id"])
    cli.run("floating", "ip", "delete", fip2["id"])


def test_a_port_added_to_a_running_server_is_plugged_in_and_taken_out_again(cloud):
    """`openstack server add port` / `remove port` on a running guest: the port is bound to
    the server's host and goes ACTIVE, the guest sees a second NIC (PCI hot-plug) and gets
    the port's address on it by DHCP; after the remove the guest has let go of the NIC and
    the port, the user's own, is free again (not deleted)."""
    srv, cli, tmp, fip, rules = cloud
    wait_for(lambda: ssh(srv, tmp, fip, "true").returncode == 0, 60, 1, what="ssh to the floating IP")
    vm1 = cli.json("server", "show", "vm1")
    port = cli.json("port", "create", "--network", "private", "--security-group", "web", unique("extra"))
    ip = port["fixed_ips"][0]["ip_address"]
    try:
        cli.run("server", "add", "port", "vm1", port["id"])
        shown = cli.json("port", "show", port["id"])
        assert (shown["device_id"], shown["device_owner"]) == (vm1["id"], "compute:nova"), shown
        assert shown["binding_host_id"] == vm1["OS-EXT-SRV-ATTR:host"], shown
        wait_for(lambda: cli.json("port", "show", port["id"])["status"] == "ACTIVE", 20, 0.5, what="the port ACTIVE")
        assert ip in cli.json("server", "show", "vm1")["addresses"]["private"]
        # The guest's kernel took the new NIC in (ACPI PCI hot-plug) ...
        wait_for(lambda: "eth1" in ssh(srv, tmp, fip, "ls /sys/class/net").stdout, 30, 1, what="eth1 in the guest")
        # ... and DHCP on it answers with the port's address (a hook that only prints the
        # lease, so the guest's routes stay as they are).
        hook = "printf '#!/bin/sh\\n[ \"$1\" = bound ] && echo \"lease $ip\"\\nexit 0\\n' > /tmp/h; chmod +x /tmp/h"
        out = ssh(srv, tmp, fip, f"{hook}; ip link set eth1 up; udhcpc -i eth1 -s /tmp/h -t 5 -T 2 -n -q 2>/dev/null")
        assert f"lease {ip}" in out.stdout, (out.stdout, out.stderr)
        cli.run("server", "remove", "port", "vm1", port["id"])
        wait_for(lambda: cli.json("port", "show", port["id"])["device_id"] == "", 60, 0.5, what="the port let go")
        assert "eth1" not in ssh(srv, tmp, fip, "ls /sys/class/net").stdout
        assert ip not in cli.json("server", "show", "vm1")["addresses"]["private"]
        # Nothing of it is left on the host.
        tap = "tap" + port["id"][:11]
        wait_for(lambda: tap not in srv.in_host("ip", "-o", "link", capture_output=True, text=True).stdout, 30, 0.5,
                 what="the port's tap removed")
    finally:
        cli.run("port", "delete", port["id"], check=False)


def test_the_security_group_lets_in_exactly_what_it_allows(cloud):
    srv, cli, tmp, fip, rules = cloud
    wait_for(lambda: ssh(srv, tmp, fip, "true").returncode == 0, 60, 1, what="ssh to the floating IP")
    assert tcp_open(srv, fip, 22)
    assert pings(srv, fip)
    # A web server listens on 80 in the guest, but the group does not allow it.
    assert ssh(srv, tmp, fip, "httpd -p 80 -h /tmp && netstat -ltn | grep -c ':80 '").stdout.strip() == "1"
    assert not tcp_open(srv, fip, 80)
    cli.run("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80", "web")
    wait_for(lambda: tcp_open(srv, fip, 80), 10, 0.2, what="port 80 to open")
    cli.run("security", "group", "rule", "delete", rules["icmp"])
    wait_for(lambda: not pings(srv, fip), 10, 0.2, what="ping to be refused")
    vm2 = fixed_ip(cli, "vm2")
    assert "reached" not in ssh(srv, tmp, fip, f"ping -c 1 -W 2 {vm2} >/dev/null && echo reached").stdout
    # ICMP from the group's own members: vm1 (a member) reaches vm2 again, through the
    # group's ipset; a port joining the group lands in the set, and leaves it when it goes.
    group = cli.json("security", "group", "show", "web")["id"]
    remote = cli.json("security", "group", "rule", "create", "--protocol", "icmp", "--remote-group", "web", "web")
    wait_for(lambda: "reached" in ssh(srv, tmp, fip, f"ping -c 1 -W 2 {vm2} >/dev/null && echo reached").stdout,
             15, 0.5, what="vm1 to reach vm2 as a member of the remote group")
    set_name = "hn4-" + hashlib.sha256(group.encode()).hexdigest()[:24]
    members = lambda: srv.in_host("ipset", "list", set_name, capture_output=True, text=True).stdout
    assert vm2 in members(), members()
    joined = cli.json("port", "create", "--network", "private", "--security-group", "web", "joiner")
    ip = joined["fixed_ips"][0]["ip_address"]
    wait_for(lambda: f"\n{ip}\n" in members(), 10, 0.1, what="the new member in the group's set")
    cli.run("port", "delete", "joiner")
    wait_for(lambda: f"\n{ip}\n" not in members(), 10, 0.1, what="the member gone from the set")
    cli.run("security", "group", "rule", "delete", remote["id"])
    wait_for(lambda: "reached" not in ssh(srv, tmp, fip, f"ping -c 1 -W 2 {vm2} >/dev/null && echo reached").stdout,
             15, 0.5, what="vm2 out of reach once the rule went")


def link_local(mac):
    """The IPv6 link-local address a guest makes from its MAC (EUI-64)."""
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 2
    groups = [b[0] << 8 | b[1], b[2] << 8 | 0xff, 0xfe << 8 | b[3], b[4] << 8 | b[5]]
    return "fe80::" + ":".join(f"{g:x}" for g in groups)


def test_the_security_group_guards_ipv6_too(cloud):
    """ip6tables chains beside the IPv4 ones: vm1 reaches vm2's link-local address only
    while an IPv6 ICMP rule lets it in (neighbour discovery passes regardless)."""
    srv, cli, tmp, fip, rules = cloud
    wait_for(lambda: ssh(srv, tmp, fip, "true").returncode == 0, 60, 1, what="ssh to the floating IP")
    mac = cli.json("port", "list", "--server", "vm2")[0]["MAC Address"]
    target = link_local(mac)

    def reached():
        out = ssh(srv, tmp, fip, f"ping -6 -c 1 -W 2 -I eth0 {target} >/dev/null 2>&1 && echo reached")
        return "reached" in out.stdout
    assert not reached(), "IPv6 got in without a rule"
    rule = cli.json("security", "group", "rule", "create", "--ethertype", "IPv6", "--protocol", "ipv6-icmp",
                    "web")["id"]
    try:
        wait_for(reached, 40, 0.5, what="ping over IPv6 once allowed")
    except AssertionError as e:
        chains = srv.in_host("ip6tables", "-S", capture_output=True, text=True).stdout
        raise AssertionError(f"{e}\nip6tables:\n{chains}\n{ssh(srv, tmp, fip, 'ip -6 neigh; ip -6 addr').stdout}")
    cli.run("security", "group", "rule", "delete", rule)
    wait_for(lambda: not reached(), 20, 0.5, what="ping over IPv6 refused again")


def plug_into_vm1(cloud, port):
    """`server add port vm1`: the name of the NIC the guest made for it, set up."""
    srv, cli, tmp, fip, _ = cloud
    cli.run("server", "add", "port", "vm1", port["id"])
    find = f"for i in /sys/class/net/*; do [ \"$(cat $i/address)\" = {port['mac_address']} ] && basename $i; done"
    dev = wait_for(lambda: ssh(srv, tmp, fip, find).stdout.strip(), 30, 1, what="the new NIC in the guest")
    ssh(srv, tmp, fip, f"ip link set {dev} up")
    return dev


@contextlib.contextmanager
def v6_port_on_router1(cli, mode, cidr, dns=None):
    """An IPv6 subnet in `mode` (RA and address mode) on a new network, on router1, and a port
    on it in the group `web`; all of it gone afterwards (vm1 lets go of the port first)."""
    net = cli.json("network", "create", unique("v6"))
    extra = ["--dns-nameserver", dns] if dns else []
    sub = cli.json("subnet", "create", "--network", net["id"], "--ip-version", "6", "--ipv6-ra-mode", mode,
                   "--ipv6-address-mode", mode, "--subnet-range", cidr, *extra, unique("v6sub"))
    cli.run("router", "add", "subnet", "router1", sub["id"])
    port = cli.json("port", "create", "--network", net["id"], "--security-group", "web", unique("v6port"))
    try:
        yield sub, port
    finally:
        unplug_from_vm1(cli, port)
        cli.run("port", "delete", port["id"])
        cli.run("router", "remove", "subnet", "router1", sub["id"])
        cli.run("network", "delete", net["id"])


def unplug_from_vm1(cli, port):
    cli.run("server", "remove", "port", "vm1", port["id"], check=False)
    wait_for(lambda: cli.json("port", "show", port["id"])["device_id"] == "", 60, 0.5, what="the port let go")


def test_a_slaac_subnet_is_advertised_and_routes_ipv6(cloud):
    """An IPv6 SLAAC subnet on the router: the router advertises its prefix (a dnsmasq in
    the router namespace), a NIC of vm1 on it (plugged in while it runs) builds exactly the
    address the network service gave its port (EUI-64), and vm1 reaches the router's IPv6
    gateway address."""
    srv, cli, tmp, fip, rules = cloud
    wait_for(lambda: ssh(srv, tmp, fip, "true").returncode == 0, 60, 1, what="ssh to the floating IP")
    with v6_port_on_router1(cli, "slaac", "2001:db8:77::/64") as (sub, port):
        addr = port["fixed_ips"][0]["ip_address"]
        dev = plug_into_vm1(cloud, port)
        wait_for(lambda: addr in ssh(srv, tmp, fip, f"ip -6 addr show dev {dev}").stdout, 60, 1,
                 what=f"the SLAAC address {addr} on {dev}")
        out = ssh(srv, tmp, fip, f"ping -6 -c 2 -W 2 {sub['gateway_ip']} >/dev/null && echo reached")
        assert "reached" in out.stdout, (out.stdout, out.stderr)


def test_a_dhcpv6_stateful_subnet_hands_out_the_ports_address(cloud):
    """An IPv6 subnet in `dhcpv6-stateful` mode on the router: the router advertises it as
    managed (no SLAAC address appears), and DHCPv6 from the network's DHCP namespace hands a
    NIC of vm1 exactly its port's address and the subnet's DNS server; with it, vm1 reaches
    the router's IPv6 gateway."""
    srv, cli, tmp, fip, rules = cloud
    wait_for(lambda: ssh(srv, tmp, fip, "true").returncode == 0, 60, 1, what="ssh to the floating IP")
    # dhclient's hook: the address as DHCPv6 gives it (a /128), and what it said.
    hook = ("printf '#!/bin/sh\\ncase $reason in BOUND6|RENEW6|REBIND6) "
            "ip -6 addr add $new_ip6_address/128 dev $interface; "
            "echo \"lease6 $new_ip6_address dns $new_dhcp6_name_servers\";; esac\\nexit 0\\n' > /tmp/h6; chmod +x /tmp/h6")
    with v6_port_on_router1(cli, "dhcpv6-stateful", "2001:db8:88::/64", "2001:db8:88::53") as (sub, port):
        addr, mac = port["fixed_ips"][0]["ip_address"], port["mac_address"]
        assert not addr.endswith(link_local(mac).split("::")[1]), f"{addr} looks like a SLAAC address"
        dev = plug_into_vm1(cloud, port)
        # The router's advertisement arrives (an IPv6 default route), and says "managed".
        wait_for(lambda: "default" in ssh(srv, tmp, fip, f"ip -6 route show dev {dev}").stdout, 60, 1,
                 what=f"a router advertisement on {dev}")

        def leased():
            out = ssh(srv, tmp, fip, f"{hook}; timeout 20 dhclient -6 -1 -cf /dev/null -sf /tmp/h6 "
                                     f"-lf /tmp/l6 -pf /tmp/p6 {dev} 2>&1", timeout=40)
            return out.stdout if f"lease6 {addr}" in out.stdout else None
        try:
            got = wait_for(leased, 90, 2, what=f"a DHCPv6 lease of {addr}")
        except AssertionError as e:
            logs = subprocess.run(f"tail -n 30 $(find {srv.data_dir} -path '*qdhcp-{sub['network_id']}*' -name log)",
                                  shell=True, capture_output=True, text=True).stdout
            raise AssertionError(f"{e}\nthe DHCP server's log:\n{logs}")
        assert "dns 2001:db8:88::53" in got, got
        addrs = ssh(srv, tmp, fip, f"ip -6 addr show dev {dev} scope global").stdout
        assert addr in addrs and "mngtmpaddr" not in addrs and "dynamic" not in addrs, addrs
        out = ssh(srv, tmp, fip, f"ping -6 -c 2 -W 2 {sub['gateway_ip']} >/dev/null && echo reached")
        assert "reached" in out.stdout, (out.stdout, out.stderr)


def test_a_dhcpv6_stateless_subnet_gives_slaac_and_dns_servers(cloud):
    """`dhcpv6-stateless`: the guest builds its SLAAC address from the router's advertisement
    and asks DHCPv6 only for the other settings (`dhclient -6 -S`): the subnet's DNS server,
    from the network's DHCP namespace (the router's dnsmasq answers no DHCPv6)."""
    srv, cli, tmp, fip, rules = cloud
    wait_for(lambda: ssh(srv, tmp, fip, "true").returncode == 0, 60, 1, what="ssh to the floating IP")
    hook = ("printf '#!/bin/sh\\n[ -n \"$new_dhcp6_name_servers\" ] && echo \"dns $new_dhcp6_name_servers\"\\n"
            "exit 0\\n' > /tmp/h6s; chmod +x /tmp/h6s")
    with v6_port_on_router1(cli, "dhcpv6-stateless", "2001:db8:89::/64", "2001:db8:89::53") as (sub, port):
        addr = port["fixed_ips"][0]["ip_address"]
        dev = plug_into_vm1(cloud, port)
        wait_for(lambda: addr in ssh(srv, tmp, fip, f"ip -6 addr show dev {dev}").stdout, 60, 1,
                 what=f"the SLAAC address {addr} on {dev}")

        def informed():
            out = ssh(srv, tmp, fip, f"{hook}; timeout 20 dhclient -6 -S -1 -cf /dev/null -sf /tmp/h6s "
                                     f"-lf /tmp/l6s -pf /tmp/p6s {dev} 2>&1", timeout=40)
            return out.stdout if "dns 2001:db8:89::53" in out.stdout else None
        wait_for(informed, 90, 2, what="the DNS server by stateless DHCPv6")


def test_a_router_routes_ipv6_between_its_subnet_and_the_external_network(cloud):
    """An IPv6 subnet on the external network: a router set to it gets an IPv6 gateway
    address there and routes (no NAT) its IPv6 subnets to it; the host, the external side,
    reaches a guest's SLAAC address as it is (once a rule lets ICMPv6 in), and the guest
    reaches the host's IPv6 gateway address."""
    srv, cli, tmp, fip, rules = cloud
    wait_for(lambda: ssh(srv, tmp, fip, "true").returncode == 0, 60, 1, what="ssh to the floating IP")
    ext6 = cli.json("subnet", "create", "--network", "public", "--ip-version", "6", "--no-dhcp",
                    "--subnet-range", "2001:db8:ff::/64", "--gateway", "2001:db8:ff::1", unique("public6"))
    router = cli.json("router", "create", unique("r6"))
    net = cli.json("network", "create", unique("v6r"))
    sub = cli.json("subnet", "create", "--network", net["id"], "--ip-version", "6", "--ipv6-ra-mode", "slaac",
                   "--ipv6-address-mode", "slaac", "--subnet-range", "2001:db8:79::/64", unique("v6rsub"))
    port = rule = None
    try:
        cli.run("router", "set", "--external-gateway", "public", router["id"])
        gw = cli.json("router", "show", router["id"])["external_gateway_info"]["external_fixed_ips"]
        assert any(f["subnet_id"] == ext6["id"] for f in gw), gw
        cli.run("router", "add", "subnet", router["id"], sub["id"])
        port = cli.json("port", "create", "--network", net["id"], "--security-group", "web", unique("v6rport"))
        addr, mac = port["fixed_ips"][0]["ip_address"], port["mac_address"]
        rule = cli.json("security", "group", "rule", "create", "--ethertype", "IPv6", "--protocol", "ipv6-icmp",
                        "web")["id"]
        dev = plug_into_vm1(cloud, port)
        wait_for(lambda: addr in ssh(srv, tmp, fip, f"ip -6 addr show dev {dev}").stdout, 60, 1,
                 what=f"the SLAAC address {addr} on {dev}")

        def host_reaches():
            return srv.in_host("ping", "-6", "-c", "1", "-W", "2", addr, capture_output=True).returncode == 0
        try:
            wait_for(host_reaches, 40, 1, what=f"ping from the external side to {addr}")
        except AssertionError as e:
            routes = srv.in_host("ip", "-6", "route", capture_output=True, text=True).stdout
            raise AssertionError(f"{e}\nthe host's IPv6 routes:\n{routes}")
        out = ssh(srv, tmp, fip, f"ping -6 -c 2 -W 2 -I {addr} 2001:db8:ff::1 >/dev/null && echo reached")
        assert "reached" in out.stdout, (out.stdout, out.stderr)
    finally:
        if port:
            unplug_from_vm1(cli, port)
            cli.run("port", "delete", port["id"])
        if rule:
            cli.run("security", "group", "rule", "delete", rule)
        cli.run("router", "remove", "subnet", router["id"], sub["id"], check=False)
        cli.run("router", "delete", router["id"])
        cli.run("network", "delete", net["id"])
        cli.run("subnet", "delete", ext6["id"])
    # The route to the router's subnet went with it.
    wait_for(lambda: "2001:db8:79::" not in srv.in_host("ip", "-6", "route", capture_output=True, text=True).stdout,
             30, 0.5, what="the host's route to the router's IPv6 subnet removed")


def test_ten_boots_ten_metadata_answers(cloud):
    srv, cli, tmp, fip, rules = cloud
    marker, key = "HANEUL-TESTIMG: metadata metadata-service", "HANEUL-TESTIMG: key installed k1"
    ids = {n: cli.json("server", "show", n)["id"] for n in ("vm1", "vm2")}

    def ready(name):
        return console_file(srv, cli, ids[name]).count("HANEUL-TESTIMG: ready")

    for _ in range(4):
        before = {n: ready(n) for n in ids}
        for name in ids:
            cli.run("server", "reboot", "--hard", name)
        for name in ids:
            wait_for(lambda: ready(name) > before[name], 120, 0.5, what=f"{name} to boot again")
    for name in ("vm1", "vm2"):
        log = console(cli, name)
        assert log.count("HANEUL-TESTIMG: booted") == 5, log[-2000:]
        assert log.count(marker) == 5 and log.count(key) == 5, log[-2000:]
        assert "no DHCP lease" not in log and "no metadata" not in log


def test_a_guest_on_a_second_host_joins_the_network_over_vxlan(cloud, tmp_path):
    """A second host (`haneul agent`, a compute node in a namespace of its own) joined to the
    cloud's host by an underlay link: the tenant network reaches it over VXLAN, so its guest
    gets its lease and metadata from the network node and pings a guest on the first host."""
    srv, cli, tmp, fip, rules = cloud
    # (An earlier test took ICMP out of the group.)
    if not any(r["IP Protocol"] == "icmp" for r in cli.json("security", "group", "rule", "list", "web")):
        cli.run("security", "group", "rule", "create", "--protocol", "icmp", "web")
    node2 = Agent(srv, tmp_path / "node2", "node2")
    node2.env["HANEUL_NETWORK__LOCAL_IP"] = UNDERLAY[1]
    try:
        subprocess.run(["ip", "link", "add", "underlay", "netns", srv.netns, "type", "veth",
                        "peer", "name", "underlay", "netns", node2.netns], check=True)
        for ns, ip in zip((srv.netns, node2.netns), UNDERLAY):
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "underlay"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "underlay", "up"], check=True)
        node2.start()
        wait_for(lambda: any(s["Host"] == "node2" and s["State"] == "up"
                             for s in cli.json("compute", "service", "list", "--service", "nova-compute")),
                 60, 0.5, what="node2 to report")
        vm3 = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--network", "private",
                       "--security-group", "web", "--key-name", "k1", "--availability-zone", "nova:node2",
                       "--wait", "vm3")
        assert vm3["OS-EXT-SRV-ATTR:host"] == "node2"
        ip = fixed_ip(cli, "vm3")
        wait_for(lambda: "HANEUL-TESTIMG: ready" in console(cli, "vm3"), 120, 1, what="vm3 booted")
        log = console(cli, "vm3")
        for marker in (f"HANEUL-TESTIMG: address {ip}/24 router=10.10.0.1 mtu=1450",
                       "HANEUL-TESTIMG: metadata metadata-service", "HANEUL-TESTIMG: key installed k1"):
            assert marker in log, log[-2000:]
        tunnels = subprocess.run(["ip", "-n", node2.netns, "-d", "link", "show", "type", "vxlan"],
                                 capture_output=True, text=True).stdout
        assert f"local {UNDERLAY[1]}" in tunnels, tunnels
        wait_for(lambda: ssh(srv, tmp, fip, "true").returncode == 0, 60, 1, what="ssh to the floating IP")
        out = ssh(srv, tmp, fip, f"ping -c 2 -W 2 {ip} >/dev/null && echo reached")
        assert out.stdout.split() == ["reached"], (out.stdout, out.stderr)
    finally:
        cli.run("server", "delete", "--wait", "vm3", check=False)
        node2.stop()


def test_deleting_everything_leaves_nothing_behind(cloud):
    srv, cli, tmp, fip, rules = cloud
    for name in ("vm1", "vm2"):
        cli.run("server", "delete", "--wait", name)
    cli.run("floating", "ip", "delete", fip)
    cli.run("router", "remove", "subnet", "router1", "private-subnet")
    cli.run("router", "delete", "router1")
    cli.run("network", "delete", "private", "public")

    def leftovers():
        found = [ns for ns in os.listdir("/run/netns") if ns.startswith(srv.netns + "-")]
        links = srv.in_host("ip", "-o", "link", "show", capture_output=True, text=True).stdout
        found += re.findall(r"^\d+: ((?:brq|tap|vxlan-)[^:@]+)", links, re.M)
        for tool in ("iptables", "ip6tables"):
            chains = srv.in_host(tool, "-S", capture_output=True, text=True).stdout
            found += [f"{tool} {line}" for line in chains.splitlines() if "haneul" in line]
        tables = srv.in_host("nft", "list", "tables", capture_output=True, text=True).stdout
        found += [line for line in tables.splitlines() if "haneul" in line]
        sets = srv.in_host("ipset", "list", "-n", capture_output=True, text=True).stdout
        found += [f"ipset {name}" for name in sets.split() if name.startswith(("hn4-", "hn6-"))]
        found += [d for d in os.listdir("/run/haneul/network") if d.startswith(srv.netns)] \
            if os.path.isdir("/run/haneul/network") else []
        return found

    wait_for(lambda: not leftovers(), 20, 0.5, what="no leftovers")
    dnsmasq = subprocess.run(["pgrep", "-a", "dnsmasq"], capture_output=True, text=True).stdout
    assert srv.netns not in dnsmasq, dnsmasq


def test_serve_makes_the_demo_layout_where_a_demo_server_answers_on_its_floating_ip(tmp_path):
    """What a learner does right after `haneul serve`: as the demo user, boot the demo image on
    `private` and reach it on a floating IP from `public`, with nothing set up by hand."""
    import shutil
    from harness import Server
    from test_servers import IMAGE
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(IMAGE, data / "haneul-testimg.qcow2")
    srv = Server(data_dir=str(data), extra_env={"HANEUL_NETWORK__DEMO_LAYOUT": "true"}).start()
    try:
        admin = Cli(srv)
        wait_for(lambda: admin.json("router", "list", "--name", "router1"), 30, 0.5, what="router1")
        nets = {n["Name"]: n for n in admin.json("network", "list", "--long")}
        assert nets["public"]["Router Type"] is True and nets["private"]["Router Type"] is False, nets
        router = admin.json("router", "show", "router1")
        assert router["external_gateway_info"]["network_id"] == nets["public"]["ID"], router
        with open(data / "keystonerc_demo") as f:
            password = re.search(r"OS_PASSWORD='([^']*)'", f.read()).group(1)
        demo = srv.os_env(user="demo", password=password, project="demo")
        rules = admin.json("security", "group", "rule", "list", "--long", "--project", "demo")
        assert {(r["IP Protocol"], r["Port Range"]) for r in rules if r["Direction"] == "ingress"
                and not r["Remote Security Group"]} == {("icmp", ""), ("tcp", "22:22")}, rules
        wait_for(lambda: admin.json("image", "list", "--name", IMAGE_NAME), 60, 1, what="the demo image")
        wait_for(lambda: admin.json("image", "show", IMAGE_NAME)["status"] == "active", 60, 1, what="the demo image")
        server = admin.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--network",
                            "private", "--wait", "demo-vm", env=demo)
        assert server["status"] == "ACTIVE", server
        fip = admin.json("floating", "ip", "create", "public", env=demo)["floating_ip_address"]
        admin.run("server", "add", "floating", "ip", "demo-vm", fip, env=demo)
        wait_for(lambda: pings(srv, fip), 90, 1, what=f"the demo server to answer on {fip}")
        # The diagnosis walks the whole path on this host and finds nothing wrong.
        out = subprocess.run([srv.binary, "network", "diagnose", server["id"]], env=srv.env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and "the path is whole" in out.stdout, out.stdout + out.stderr
        assert f"floating IP {fip} is forwarded" in out.stdout, out.stdout
        # A broken path is named: the guest's tap taken off its bridge.
        tap = "tap" + admin.json("port", "list", "--server", server["id"])[0]["ID"][:11]
        srv.in_host("ip", "link", "set", tap, "nomaster", check=True)
        out = subprocess.run([srv.binary, "network", "diagnose", server["id"]], env=srv.env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode != 0 and f"breaks at: tap {tap} is up on" in out.stderr, out.stdout + out.stderr
    finally:
        srv.stop()
