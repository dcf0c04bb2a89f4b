"""A server build is a persisted workflow (claim → ports → spec → active): `haneul serve`
killed with SIGKILL in each step, before and after the step's work, and started again carries
the build on, and the server ends ACTIVE with exactly one claim in placement, one port on its
network and one running instance; deleted, nothing of it is left. A step that fails undoes
the ones before it and the server ends in ERROR with nothing held.

The build stops at a step when `HANEUL_FAULT_PAUSE_AT=build.<step>.<before|after>` is set
(the workflow waits there and logs `fault point reached`), so that the kill lands exactly
there."""
import os
import signal

import pytest
import requests

from support import Api, Cli, HTTP_TIMEOUT, log_tail, start_server, unique, wait_for
from test_servers import IMAGE_NAME, prepare

POINTS = [f"build.{step}.{when}" for step in ("claim", "ports", "spec", "active") for when in ("before", "after")]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build-crash")
    srv = start_server(tmp / "data")
    prepare(srv, tmp)
    cli = Cli(srv)
    net = cli.json("network", "create", unique("crashnet"))["id"]
    cli.run("subnet", "create", "--network", net, "--subnet-range", "10.77.0.0/24", unique("crashsub"))
    yield srv, net
    srv.stop()


def restart(srv, pause_at=None):
    """SIGKILL `haneul serve` (its guests live on) and start it again."""
    assert srv.proc is not None and srv.proc.poll() is None, "serve is not running"
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(timeout=20)
    srv.proc = None
    if pause_at:
        srv.env["HANEUL_FAULT_PAUSE_AT"] = pause_at
    else:
        srv.env.pop("HANEUL_FAULT_PAUSE_AT", None)
    srv.start()


def ports_of(srv, api, sid):
    r = requests.get(f"{srv.network_url}/v2.0/ports", params={"device_id": sid},
                     headers={"X-Auth-Token": api.admin_token}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    return r.json()["ports"]


def claims(cli, sid):
    return cli.json("resource", "provider", "allocation", "show", sid)


def instance_dir(srv, sid):
    return os.path.join(srv.data_dir, "instances", sid)


@pytest.mark.parametrize("point", POINTS)
def test_a_build_killed_at_each_step_ends_active_and_whole_after_a_restart(cloud, point):
    srv, net = cloud
    cli, api = Cli(srv), Api(srv)
    restart(srv, pause_at=point)
    name = unique("crash")
    sid = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", f"net-id={net}",
                   name)["id"]
    wait_for(lambda: f"point={point}" in log_tail(srv, 400) and "fault point reached" in log_tail(srv, 400),
             60, 0.2, what=f"the build to reach {point}")
    resumed = log_tail(srv, 100000).count("resuming a workflow cut short by a restart")
    restart(srv)

    def status():
        shown = cli.json("server", "show", sid)
        assert shown["status"] != "ERROR", (point, shown.get("fault"), log_tail(srv))
        return shown["status"]

    wait_for(lambda: status() == "ACTIVE", 120, 1, what=f"ACTIVE after a kill at {point}")
    assert log_tail(srv, 100000).count("resuming a workflow cut short by a restart") == resumed + 1
    claimed = claims(cli, sid)
    assert [c["resources"] for c in claimed] == [{"VCPU": 1, "MEMORY_MB": 256, "DISK_GB": 1}], (point, claimed)
    ports = ports_of(srv, api, sid)
    assert len(ports) == 1 and ports[0]["network_id"] == net, (point, ports)
    shown = cli.json("server", "show", sid)
    assert ports[0]["fixed_ips"][0]["ip_address"] in str(shown["addresses"]), (point, shown["addresses"])
    assert ports[0]["binding:host_id"] == shown["OS-EXT-SRV-ATTR:host"]
    assert os.path.isdir(instance_dir(srv, sid))
    assert any(sid.encode() in open(f"/proc/{p}/cmdline", "rb").read() for p in srv.qemu_pids()), point

    cli.run("server", "delete", "--wait", sid)
    assert claims(cli, sid) == []
    assert ports_of(srv, api, sid) == []
    assert not os.path.exists(instance_dir(srv, sid))


def test_a_failed_step_undoes_the_ones_before_it(cloud):
    """A fixed address already taken fails the ports step: the claim goes back, no port is
    left, no instance made, and the server is ERROR with the reason."""
    srv, net = cloud
    cli, api = Cli(srv), Api(srv)
    taken = cli.json("port", "create", "--network", net, "--fixed-ip", "ip-address=10.77.0.50", unique("taken"))
    sid = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano",
                   "--nic", f"net-id={net},v4-fixed-ip=10.77.0.50", unique("fails"))["id"]
    wait_for(lambda: cli.json("server", "show", sid)["status"] == "ERROR", 60, 0.5, what="ERROR")
    shown = cli.json("server", "show", sid)
    assert "aborted" in str(shown.get("fault")), shown.get("fault")
    assert claims(cli, sid) == []
    assert ports_of(srv, api, sid) == []
    assert not os.path.exists(instance_dir(srv, sid))
    cli.run("server", "delete", "--wait", sid)
    cli.run("port", "delete", taken["id"])
