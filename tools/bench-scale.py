#!/usr/bin/env python3
"""Scale benchmark (issue 16): fills one test cloud through the public API and reports, at
each tenth of the fill, what a create, a `limit=100` list and a show cost at that size, and
the server's memory.

The cloud is a harness.Server (its host a network namespace it makes and removes, the data
plane running in it). The fill: `PORTS` ports (default 20,000; the issue's goal is 100,000)
over `NETWORKS` networks (default 100, one /16 subnet each, no DHCP), created by `CLIENTS`
concurrent clients (default 8); the admin project's network quotas are lifted first.

The first network has DHCP; the others not. For each tenth it prints: ports in the cloud,
the creates' rate and p50/p99, the p50/p99 of `GET /v2.0/ports?limit=100` (from a random
marker) and of `GET /v2.0/ports/{id}`, the server's RSS (total, and its growth since the fill began per port), and the data
plane's time for one more port (a guest's port bound to this host, on the DHCP network, in a
security group): from its create to its DHCP host entry and to its firewall chain on the host. No figure is asserted: compare runs (and builds) by
running it with HANEUL_BIN set to each, one after the other.

usage: HANEUL_BIN=target/release/haneul tools/bench-scale.py [PORTS] [NETWORKS] [CLIENTS]
"""
import concurrent.futures
import glob
import os
import random
import socket
import statistics
import sys
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import admin_login, bench_cloud, pct, rss_kib  # noqa: E402

PORTS = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
NETWORKS = int(sys.argv[2]) if len(sys.argv) > 2 else 100
CLIENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 8
SAMPLES = 50


def main():
    bench_cloud("haneul-bench-scale-", run)


def run(srv):
    tok, project = admin_login(srv)
    h = {"X-Auth-Token": tok}
    url = srv.network_url + "/v2.0"
    local = __import__("threading").local()

    def http():
        if not hasattr(local, "s"):
            local.s = requests.Session()
        return local.s

    def call(method, path, body=None):
        t0 = time.monotonic()
        r = http().request(method, url + path, json=body, headers=h, timeout=120)
        elapsed = time.monotonic() - t0
        assert r.status_code < 300, (method, path, r.status_code, r.text[:300])
        return r.json() if r.content else None, elapsed

    assert NETWORKS <= 250, "one 10.N.0.0/16 per network"
    call("PUT", f"/quotas/{project}", {"quota": {"network": -1, "subnet": -1, "port": -1}})
    networks = []
    for i in range(NETWORKS):
        net = call("POST", "/networks", {"network": {"name": f"scale-{i}"}})[0]["network"]
        call("POST", "/subnets", {"subnet": {"network_id": net["id"], "ip_version": 4,
                                             "cidr": f"10.{i}.0.0/16", "enable_dhcp": i == 0}})
        networks.append(net["id"])
    group = call("POST", "/security-groups", {"security_group": {"name": "probe"}})[0]["security_group"]
    host = socket.gethostname()

    def probe(n):
        """A guest's port bound here: seconds until its DHCP entry and its firewall chain."""
        t0 = time.monotonic()
        p = call("POST", "/ports", {"port": {"network_id": networks[0], "device_owner": "compute:nova",
                                             "device_id": f"probe-{n}", "binding:host_id": host,
                                             "security_groups": [group["id"]]}})[0]["port"]
        dhcp = chain = None
        entry = f"/run/haneul/network/*qdhcp-{networks[0]}/hosts/{p['id']}"
        while (dhcp is None or chain is None) and time.monotonic() - t0 < 60:
            if dhcp is None and any(p["mac_address"] in open(f).read() for f in glob.glob(entry)):
                dhcp = time.monotonic() - t0
            if chain is None:
                rules = srv.in_host("iptables", "-S", capture_output=True, text=True).stdout
                if f"-N haneul-i{p['id'][:10]}" in rules:
                    chain = time.monotonic() - t0
            time.sleep(0.005)
        fmt = lambda x: f"{x * 1000:.0f}" if x is not None else ">60000"
        return fmt(dhcp), fmt(chain)

    print(f"bench-scale: {PORTS} ports over {NETWORKS} networks, {CLIENTS} clients; binary {srv.binary}")
    print(f"{'ports':>8} {'create/s':>9} {'create p50':>11} {'p99':>7} {'list p50':>9} {'p99':>7} "
          f"{'show p50':>9} {'p99':>7} {'RSS MiB':>8} {'KiB/port':>9} {'DHCP ms':>8} {'chain ms':>9}")
    made = []
    rss0 = rss_kib(srv.proc.pid)
    step = max(1, PORTS // 10)
    with concurrent.futures.ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        while len(made) < PORTS:
            batch = range(len(made), min(PORTS, len(made) + step))
            t0 = time.monotonic()
            results = list(pool.map(
                lambda i: call("POST", "/ports", {"port": {"network_id": networks[i % NETWORKS], "name": f"p{i}"}}),
                batch))
            wall = time.monotonic() - t0
            made.extend(r[0]["port"]["id"] for r in results)
            creates = [r[1] for r in results]
            ids = sorted(made)
            lists = [call("GET", f"/ports?limit=100&marker={random.choice(ids)}")[1] for _ in range(SAMPLES)]
            shows = [call("GET", f"/ports/{random.choice(made)}")[1] for _ in range(SAMPLES)]
            rss = rss_kib(srv.proc.pid)
            dhcp, chain = probe(len(made))
            print(f"{len(made):>8} {len(batch) / wall:>9.0f} {pct(creates, .5):>9.1f}ms {pct(creates, .99):>5.0f}ms "
                  f"{pct(lists, .5):>7.1f}ms {pct(lists, .99):>5.0f}ms {pct(shows, .5):>7.1f}ms "
                  f"{pct(shows, .99):>5.0f}ms {rss / 1024:>8.0f} {(rss - rss0) / len(made):>9.1f} {dhcp:>8} {chain:>9}", flush=True)


if __name__ == "__main__":
    main()
