#!/usr/bin/env python3
"""Network benchmark, in a test cloud of its own (harness.Server: its host is a network
namespace it makes and removes). Reports:

1. ports: N (default 200) ports created at once on one network through the API: ports/s, and
   whether IPAM handed out N distinct addresses inside the subnet;
2. boot: a guest on a network (DHCP, metadata service) against the same guest without a NIC
   (config drive): the guest's own uptime at "ready", and from `server create` to its DHCP
   lease (dnsmasq's log) and to its first metadata answer (the metadata service's log);
3. firewall: 50 ports bound to this host in one security group; a rule added to the group,
   and the time until every one of the 50 ports' chains in the host's iptables has it.

usage: HANEUL_BIN=target/release/haneul HANEUL_TEST_IMAGE=.../haneul-testimg.qcow2 tools/bench-network.py [N]
Targets (issue 5): >= 200 ports/s, DHCP and metadata within the guest's own boot time (no
added waits), a rule change on 50 ports applied in < 1 s.
"""
import concurrent.futures
import ipaddress
import os
import re
import socket
import statistics
import subprocess
import sys
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import admin_login, bench_cloud  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
IMAGE = os.environ.get("HANEUL_TEST_IMAGE", "")


def main():
    bench_cloud("haneul-bench-net-", run)


def run(srv):
    h = {"X-Auth-Token": admin_login(srv)[0]}
    net_url = srv.network_url + "/v2.0"
    http = requests.Session()
    http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))

    def post(path, body, url=net_url):
        r = http.post(url + path, json=body, headers=h, timeout=60)
        assert r.status_code in (200, 201, 202), (path, r.status_code, r.text[:300])
        return r.json()

    net = post("/networks", {"network": {"name": "bench"}})["network"]
    subnet = post("/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": "10.50.0.0/22",
                                          "enable_dhcp": False}})["subnet"]

    # 1. Ports at once.
    def make(i):
        return post("/ports", {"port": {"network_id": net["id"], "name": f"p{i}"}})["port"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        t0 = time.monotonic()
        ports = list(pool.map(make, range(N)))
        elapsed = time.monotonic() - t0
    ips = [p["fixed_ips"][0]["ip_address"] for p in ports]
    inside = all(ipaddress.ip_address(ip) in ipaddress.ip_network(subnet["cidr"]) for ip in ips)
    print(f"ports: {N} created at once in {elapsed:.2f} s = {N / elapsed:.0f} ports/s; "
          f"{len(set(ips))} distinct addresses, all inside {subnet['cidr']}: {inside}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda p: http.delete(f"{net_url}/ports/{p['id']}", headers=h, timeout=60), ports))

    # 3. Firewall: 50 ports bound here, in one group.
    group = post("/security-groups", {"security_group": {"name": "bench"}})["security_group"]
    host = socket.gethostname()
    bound = [post("/ports", {"port": {"network_id": net["id"], "security_groups": [group["id"]],
                                      "device_owner": "compute:nova", "device_id": f"bench-{i}",
                                      "binding:host_id": host}})["port"] for i in range(50)]

    def chains_with(text):
        rules = srv.in_host("iptables", "-S", capture_output=True, text=True).stdout
        return sum(1 for p in bound if f"-A haneul-i{p['id'][:10]} " in rules
                   and any(text in line for line in rules.splitlines() if line.startswith(f"-A haneul-i{p['id'][:10]} ")))

    deadline = time.monotonic() + 60
    while chains_with("-j DROP") < 50 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert chains_with("-j DROP") == 50, "the 50 ports' chains did not appear"
    times = []
    for port in (8080, 8081, 8082):
        t0 = time.monotonic()
        post("/security-group-rules", {"security_group_rule": {
            "security_group_id": group["id"], "direction": "ingress", "protocol": "tcp",
            "port_range_min": port, "port_range_max": port}})
        while chains_with(f"--dport {port}") < 50:
            if time.monotonic() - t0 > 30:
                raise SystemExit(f"rule for {port} not on all 50 ports after 30 s")
            time.sleep(0.01)
        times.append(time.monotonic() - t0)
    print(f"firewall: a rule added to a group of 50 ports is on all 50 in "
          f"{', '.join(f'{t * 1000:.0f}' for t in times)} ms (API call included)")
    for p in bound:
        http.delete(f"{net_url}/ports/{p['id']}", headers=h, timeout=60)

    # 2. Boot: on a network vs without a NIC.
    if not IMAGE:
        print("boot: skipped (HANEUL_TEST_IMAGE not set)")
        return
    dnet = post("/networks", {"network": {"name": "boot"}})["network"]
    post("/subnets", {"subnet": {"network_id": dnet["id"], "ip_version": 4, "cidr": "10.60.0.0/24"}})
    image = post("/v2/images", {"name": "t", "disk_format": "qcow2", "container_format": "bare"}, url=srv.image_url)
    with open(IMAGE, "rb") as f:
        http.put(f"{srv.image_url}/v2/images/{image['id']}/file", data=f,
                 headers={**h, "Content-Type": "application/octet-stream"}, timeout=120).raise_for_status()
    compute = srv.compute_url
    results = {}
    for label, networks in (("warm-up", "none"), ("no NIC", "none"), ("on a network", [{"uuid": dnet["id"]}]),
                            ("no NIC ", "none"), ("on a network ", [{"uuid": dnet["id"]}])):
        t0 = time.time()
        s = http.post(compute + "/servers", json={"server": {"name": label.strip(), "imageRef": image["id"],
                                                              "flavorRef": "42", "networks": networks}},
                      headers={**h, "OpenStack-API-Version": "compute 2.37"}, timeout=60).json()["server"]
        log = os.path.join(srv.data_dir, "instances", s["id"], "console.log")
        deadline = time.monotonic() + 120
        text = ""
        while "HANEUL-TESTIMG: ready" not in text and time.monotonic() < deadline:
            time.sleep(0.2)
            text = open(log, errors="replace").read() if os.path.exists(log) else ""
        ready = float(re.search(r"HANEUL-TESTIMG: ready uptime=([\d.]+)", text).group(1))
        source = re.search(r"HANEUL-TESTIMG: metadata (\S+)", text).group(1)
        results.setdefault(label.strip(), []).append((ready, source))
        if networks != "none":
            lease = lease_time(srv, dnet["id"])
            meta = metadata_time(srv)
            print(f"boot {label.strip()}: create→DHCP lease {lease - t0:.1f} s, create→first metadata answer "
                  f"{meta - t0:.1f} s, guest ready at uptime {ready:.2f} s ({source})")
        http.delete(f"{compute}/servers/{s['id']}", headers=h, timeout=60)
        time.sleep(2)
    for label in ("no NIC", "on a network"):
        ready = [r for r, _ in results[label]]
        print(f"boot {label}: guest ready at uptime {statistics.mean(ready):.2f} s (mean of {len(ready)}; "
              f"metadata from {results[label][0][1]})")


def lease_time(srv, network_id):
    """Wall-clock time of the last DHCPACK in the network's dnsmasq log (second resolution)."""
    path = f"/run/haneul/network/{srv.netns}-qdhcp-{network_id}/log"
    acks = [line for line in open(path, errors="replace") if "DHCPACK" in line]
    stamp = " ".join(acks[-1].split()[:3])
    t = time.strptime(f"{time.localtime().tm_year} {stamp}", "%Y %b %d %H:%M:%S")
    return time.mktime(t)


def metadata_time(srv):
    """Wall-clock time of the last meta_data.json the metadata service answered (its log)."""
    lines = [line for line in open(srv.log_path, errors="replace")
             if 'service="metadata"' in line and "meta_data.json" in line]
    stamp = lines[-1].split()[0]
    from datetime import datetime
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


if __name__ == "__main__":
    main()
