#!/usr/bin/env python3
"""Scale benchmark of the other record kinds (issue 16; `tools/bench-scale.py` does ports):
fills one test cloud through the public APIs, kind after kind, and reports at each tenth of
each fill what a create, a list and a show cost at that size, and the server's memory.

The fills (scaled by `SCALE`, default 1.0 = the issue's sizes):
- security group rules: 20,000 over 200 groups (TCP ports), admin's network quotas lifted;
- users with projects and role assignments: 50,000 users (no password), one project per ten
  users, each user a `member` of its project; the create timed is the user's, the
  assignment's p50 printed beside it; lists are `GET /v3/users?name=` (one user) and
  `GET /v3/role_assignments?user.id=` (one actor);
- images: 10,000 (records, no data), admin's image limits lifted;
- servers: 10,000 of a flavor no host can hold (4096 vCPUs): they end in ERROR (no valid
  host) without a port, and are records like any other; admin's compute quotas lifted.
List calls take `limit=100` from a random marker where the API pages (rules, images,
servers). No figure is asserted: compare runs (and builds) one after the other.

usage: HANEUL_BIN=target/release/haneul tools/bench-scale-kinds.py [SCALE] [CLIENTS] [KINDS,...]
"""

import concurrent.futures
import os
import random
import sys
import threading
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import admin_login, bench_cloud, pct, rss_kib  # noqa: E402

SCALE = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
CLIENTS = int(sys.argv[2]) if len(sys.argv) > 2 else 8
KINDS = sys.argv[3].split(",") if len(sys.argv) > 3 else ["rules", "users", "images", "servers"]
SAMPLES = 50


def main():
    bench_cloud("haneul-bench-kinds-", run)


def run(srv):
    tok, project = admin_login(srv)
    local = threading.local()

    def call(method, url, body=None, headers=None, ok=300):
        if not hasattr(local, "s"):
            local.s = requests.Session()
        h = {"X-Auth-Token": tok, **(headers or {})}
        t0 = time.monotonic()
        r = local.s.request(method, url, json=body, headers=h, timeout=120)
        elapsed = time.monotonic() - t0
        assert r.status_code < ok, (method, url, r.status_code, r.text[:300])
        return r.json() if r.content else None, elapsed

    print(f"bench-scale-kinds: scale {SCALE}, {CLIENTS} clients; binary {srv.binary}")
    print(f"{'kind':>8} {'count':>7} {'create/s':>9} {'create p50':>11} {'p99':>7} {'also p50':>9} "
          f"{'list p50':>9} {'p99':>7} {'show p50':>9} {'p99':>7} {'RSS MiB':>8} {'KiB/rec':>8}", flush=True)

    def fill(kind, total, create, list_call, show_call):
        """Creates `total` records with `create(i)` → (id, seconds, other seconds or None),
        measuring at each tenth."""
        made, rss0 = [], rss_kib(srv.proc.pid)
        step = max(1, total // 10)
        with concurrent.futures.ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            while len(made) < total:
                batch = range(len(made), min(total, len(made) + step))
                t0 = time.monotonic()
                results = list(pool.map(create, batch))
                wall = time.monotonic() - t0
                made.extend(r[0] for r in results)
                also = [r[2] for r in results if r[2] is not None]
                ids = sorted(made)
                lists = [list_call(random.choice(ids))[1] for _ in range(SAMPLES)]
                shows = [show_call(random.choice(made))[1] for _ in range(SAMPLES)]
                rss = rss_kib(srv.proc.pid)
                creates = [r[1] for r in results]
                print(f"{kind:>8} {len(made):>7} {len(batch) / wall:>9.0f} {pct(creates, .5):>9.1f}ms "
                      f"{pct(creates, .99):>5.0f}ms {pct(also, .5):>7.1f}ms {pct(lists, .5):>7.1f}ms "
                      f"{pct(lists, .99):>5.0f}ms {pct(shows, .5):>7.1f}ms {pct(shows, .99):>5.0f}ms "
                      f"{rss / 1024:>8.0f} {(rss - rss0) / len(made):>8.2f}", flush=True)
        return made

    net = srv.network_url + "/v2.0"
    if "rules" in KINDS:
        call("PUT", f"{net}/quotas/{project}",
             {"quota": {"security_group": -1, "security_group_rule": -1}})
        total = int(20000 * SCALE)
        groups = [call("POST", f"{net}/security-groups", {"security_group": {"name": f"g{i}"}})[0]
                  ["security_group"]["id"] for i in range(200)]

        def rule(i):
            body = {"security_group_rule": {"security_group_id": groups[i % 200], "direction": "ingress",
                                            "protocol": "tcp", "port_range_min": 1 + i // 200,
                                            "port_range_max": 1 + i // 200}}
            r, t = call("POST", f"{net}/security-group-rules", body)
            return r["security_group_rule"]["id"], t, None

        fill("rules", total, rule, lambda m: call("GET", f"{net}/security-group-rules?limit=100&marker={m}"),
             lambda i: call("GET", f"{net}/security-group-rules/{i}"))

    ks = srv.auth_url
    if "users" in KINDS:
        total = int(50000 * SCALE)
        roles = call("GET", f"{ks}/roles?name=member")[0]["roles"]
        member = roles[0]["id"]
        projects = {}
        names = {}

        def user(i):
            if i % 10 == 0:
                p = call("POST", f"{ks}/projects", {"project": {"name": f"bp{i}", "domain_id": "default"}})[0]
                projects[i // 10] = p["project"]["id"]
            while i // 10 not in projects:
                time.sleep(0.001)
            r, t = call("POST", f"{ks}/users", {"user": {"name": f"bu{i}", "domain_id": "default"}})
            uid = r["user"]["id"]
            names[uid] = f"bu{i}"
            _, ta = call("PUT", f"{ks}/projects/{projects[i // 10]}/users/{uid}/roles/{member}")
            return uid, t, ta

        fill("users", total, user, lambda u: call("GET", f"{ks}/users?name={names[u]}"),
             lambda u: call("GET", f"{ks}/role_assignments?user.id={u}"))

    img = srv.image_url + "/v2"
    if "images" in KINDS:
        total = int(10000 * SCALE)
        # The image service's unified limits (image_count_total, ...) lifted for admin's project,
        # in the region of their registered defaults.
        image_service = call("GET", f"{ks}/services?type=image")[0]["services"][0]["id"]
        for reg in call("GET", f"{ks}/registered_limits?service_id={image_service}")[0]["registered_limits"]:
            call("POST", f"{ks}/limits", {"limits": [{"service_id": image_service, "project_id": project,
                                                        "region_id": reg["region_id"],
                                                        "resource_name": reg["resource_name"], "resource_limit": 10**9}]})

        def image(i):
            r, t = call("POST", f"{img}/images", {"name": f"bi{i}", "disk_format": "raw", "container_format": "bare"})
            return r["id"], t, None

        fill("images", total, image, lambda m: call("GET", f"{img}/images?limit=100&marker={m}"),
             lambda i: call("GET", f"{img}/images/{i}"))

    nova = srv.compute_url
    if "servers" in KINDS:
        total = int(10000 * SCALE)
        call("PUT", f"{nova}/os-quota-sets/{project}",
             {"quota_set": {"instances": -1, "cores": -1, "ram": -1}})
        flavor = call("POST", f"{nova}/flavors",
                      {"flavor": {"name": "bench-huge", "vcpus": 4096, "ram": 1048576, "disk": 1}})[0]["flavor"]["id"]
        image = call("POST", f"{img}/images", {"name": "bench-server", "disk_format": "raw",
                                               "container_format": "bare"})[0]["id"]
        r = requests.put(f"{img}/images/{image}/file", data=b"\0" * 1024,
                         headers={"X-Auth-Token": tok, "Content-Type": "application/octet-stream"}, timeout=60)
        assert r.status_code < 300, r.text
        v = {"OpenStack-API-Version": "compute 2.37", "X-OpenStack-Nova-API-Version": "2.37"}

        def server(i):
            body = {"server": {"name": f"bs{i}", "flavorRef": flavor, "imageRef": image, "networks": "none"}}
            r, t = call("POST", f"{nova}/servers", body, headers=v)
            return r["server"]["id"], t, None

        fill("servers", total, server, lambda m: call("GET", f"{nova}/servers?limit=100&marker={m}", headers=v),
             lambda i: call("GET", f"{nova}/servers/{i}", headers=v))


if __name__ == "__main__":
    main()
