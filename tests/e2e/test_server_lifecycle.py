"""Servers through their life cycle with the unmodified `openstack` CLI on real QEMU (TCG):
suspend/resume, resize with revert and confirm, rescue, snapshots, and the VNC console over
its websocket. A module of its own so that its guests boot beside test_servers.py's (pytest
runs one file per xdist worker)."""
import os
import subprocess

import pytest
import requests

from support import Api, Cli, HTTP_TIMEOUT, start_server, unique, wait_for
from test_servers import IMAGE_NAME, console, nova, prepare


@pytest.fixture(scope="module")
def booted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lifecycle")
    srv = start_server(tmp / "data")
    prepare(srv, tmp)
    yield srv, tmp
    srv.stop()


def test_suspend_resize_and_snapshot_with_the_cli(booted):
    """`openstack server suspend/resume` (the guest's state saved to a file, QEMU gone, the
    same boot carrying on), `server resize` with `revert` and `confirm` (memory and disk as
    the flavor says, the old disk kept until confirmed, placement holding both flavors
    meanwhile), Nova's 400s for resizes it refuses, `server rescue/unrescue`, and `server
    image create`: a new active image that boots."""
    srv, _ = booted
    cli, api = Cli(srv), Api(srv)
    name = unique("ops")
    sid = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none", "--wait",
                   name)["id"]
    inst = os.path.join(srv.data_dir, "instances", sid)

    def status():
        shown = cli.json("server", "show", sid)
        assert shown["status"] != "ERROR", shown.get("fault")
        return shown["status"]

    def qemu_args():
        for p in srv.qemu_pids():
            args = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
            if sid.encode() in args:
                return [a.decode() for a in args]
        return None

    def used(rc):
        token = api.admin_token
        r = requests.get(f"{srv.placement_url}/resource_providers", headers={"X-Auth-Token": token},
                         timeout=HTTP_TIMEOUT)
        total = 0
        for rp in r.json()["resource_providers"]:
            u = requests.get(f"{srv.placement_url}/resource_providers/{rp['uuid']}/usages",
                             headers={"X-Auth-Token": token}, timeout=HTTP_TIMEOUT)
            total += u.json()["usages"].get(rc, 0)
        return total

    wait_for(lambda: "HANEUL-TESTIMG: ready" in console(cli, sid), 120, 1, what="the guest to be ready")

    # Suspend and resume: no QEMU while suspended, the same boot afterwards.
    cli.run("server", "suspend", name)
    wait_for(lambda: status() == "SUSPENDED", 120, 1, what="SUSPENDED")
    assert qemu_args() is None
    assert os.path.getsize(os.path.join(inst, "suspend.state")) > 1 << 20
    cli.run("server", "resume", name)
    wait_for(lambda: status() == "ACTIVE", 120, 1, what="ACTIVE after resume")
    assert qemu_args() is not None
    assert not os.path.exists(os.path.join(inst, "suspend.state"))
    assert console(cli, sid).count("HANEUL-TESTIMG: booted") == 1, "resume carried on the same boot"

    # Resize and revert: 512 MiB while resized, the old flavor and disk back after.
    memory_before = used("MEMORY_MB")
    cli.run("server", "resize", "--flavor", "m1.tiny", "--wait", name)
    shown = cli.json("server", "show", sid)
    assert shown["status"] == "VERIFY_RESIZE" and "m1.tiny" in str(shown["flavor"]), shown
    args = qemu_args()
    assert args[args.index("-m") + 1] == "512", args
    assert os.path.exists(os.path.join(inst, "disk.pre-resize"))
    assert used("MEMORY_MB") == memory_before + 512, "both flavors are held until the resize ends"
    cli.run("server", "resize", "revert", name)
    wait_for(lambda: status() == "ACTIVE", 120, 1, what="ACTIVE after revert")
    shown = cli.json("server", "show", sid)
    assert "m1.nano" in str(shown["flavor"]), shown
    args = qemu_args()
    assert args[args.index("-m") + 1] == "256", args
    assert not os.path.exists(os.path.join(inst, "disk.pre-resize"))
    assert used("MEMORY_MB") == memory_before

    # Resize to a bigger disk and confirm.
    flavor = unique("bigger")
    flavor_id = cli.json("flavor", "create", "--ram", "384", "--disk", "2", "--vcpus", "1", flavor)["id"]
    cli.run("server", "resize", "--flavor", flavor, "--wait", name)
    cli.run("server", "resize", "confirm", name)
    wait_for(lambda: status() == "ACTIVE", 120, 1, what="ACTIVE after confirm")
    info = subprocess.run(["qemu-img", "info", "-U", "--output=json", os.path.join(inst, "disk")],
                          capture_output=True, text=True, check=True)
    assert '"virtual-size": 2147483648' in info.stdout, info.stdout
    assert not os.path.exists(os.path.join(inst, "disk.pre-resize"))
    assert used("MEMORY_MB") == memory_before - 256 + 384

    # Both resizes are migrations (`openstack server migration list`, os-migrations 2.80).
    migrations = cli.json("server", "migration", "list", "--server", sid, "--os-compute-api-version", "2.80")
    assert sorted(m["Status"] for m in migrations) == ["confirmed", "reverted"], migrations
    assert {m["Type"] for m in migrations} == {"resize"}, migrations

    # Nova's refusals: the same flavor, a smaller disk, a confirm with nothing to confirm.
    token = api.admin_token
    for body, status_code, text in [
        ({"resize": {"flavorRef": flavor_id}}, 400, "must change flavor"),
        ({"resize": {"flavorRef": "1"}}, 400, "resize disk down"),
        ({"resize": {"flavorRef": "no-such-flavor"}}, 400, "Unable to locate requested flavor"),
        ({"confirmResize": None}, 409, "vm_state active"),
    ]:
        r = nova(srv, "POST", f"/servers/{sid}/action", token, json=body)
        assert r.status_code == status_code and text in r.text, (body, r.text)

    # Rescue: the guest boots from a fresh disk of the image, its own disk attached second.
    cli.run("server", "rescue", name)
    wait_for(lambda: status() == "RESCUE" and cli.json("server", "show", sid)["OS-EXT-STS:task_state"] is None,
             120, 1, what="RESCUE")
    args = qemu_args()
    assert any("disk.rescue" in a for a in args) and any(a.endswith("/disk,if=none,id=disk0,format=qcow2,cache=none,aio=threads") for a in args), args
    cli.run("server", "unrescue", name)
    wait_for(lambda: status() == "ACTIVE", 120, 1, what="ACTIVE after unrescue")
    assert not any("disk.rescue" in a for a in qemu_args())
    assert not os.path.exists(os.path.join(inst, "disk.rescue"))

    # A snapshot: an active image of the server's disk, which boots.
    snap = unique("snap")
    cli.run("server", "image", "create", "--name", snap, "--wait", name)
    image = cli.json("image", "show", snap)
    assert image["status"] == "active" and image["disk_format"] == "qcow2", image
    assert image["properties"]["image_type"] == "snapshot" and image["properties"]["instance_uuid"] == sid, image
    assert status() == "ACTIVE"
    child = unique("fromsnap")
    cli.run("server", "create", "--image", snap, "--flavor", flavor, "--nic", "none", "--wait", child)
    wait_for(lambda: "HANEUL-TESTIMG: ready" in console(cli, child), 120, 1, what="the snapshot's guest to boot")

    actions = {e["Action"] for e in cli.json("server", "event", "list", sid)}
    assert {"suspend", "resume", "resize", "revertResize", "confirmResize", "rescue", "unrescue",
            "createImage"} <= actions, actions
    cli.run("server", "delete", "--wait", name, child)
    cli.run("image", "delete", snap)
    assert used("MEMORY_MB") == memory_before - 256


def _ws_connect(url_host, port, path):
    """A websocket handshake (as tempest's and noVNC's clients do it); the socket and the
    response head."""
    import base64
    import hashlib
    import socket
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection((url_host, port), timeout=HTTP_TIMEOUT)
    sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {url_host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: binary\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    return sock, head.decode(errors="replace"), rest, accept.decode()


class _Frames:
    def __init__(self, sock, buffered):
        self.sock, self.buf = sock, buffered

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self._read(2), "big")
        elif n == 127:
            n = int.from_bytes(self._read(8), "big")
        return b0 & 0x0F, self._read(n)

    def send(self, data):
        mask = os.urandom(4)
        assert len(data) < 126
        self.sock.sendall(bytes([0x82, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def test_the_vnc_console_speaks_rfb_over_a_websocket_and_refuses_bad_tokens(booted):
    """`openstack console url show --novnc`: the URL serves a noVNC page, and its websocket
    (token checked with the controller) carries the guest's VNC: version, security type
    None, ServerInit with the guest's name. A wrong token gets the connection closed."""
    from urllib.parse import parse_qs, unquote, urlparse
    srv, _ = booted
    cli = Cli(srv)
    name = unique("vnc")
    cli.run("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.nano", "--nic", "none", "--wait", name)
    url = cli.json("console", "url", "show", "--novnc", name)["url"]
    parsed = urlparse(url)
    assert parsed.port == srv.console_port, url
    page = requests.get(url, timeout=HTTP_TIMEOUT)
    assert page.status_code == 200 and "noVNC" in page.text and "<script" in page.text, page.text[:300]
    path = unquote(parse_qs(parsed.query)["path"][0])
    assert path.startswith("?token=")

    sock, head, rest, accept = _ws_connect(parsed.hostname, parsed.port, path)
    assert head.startswith("HTTP/1.1 101") and accept in head, head
    ws = _Frames(sock, rest)
    _, version = ws.recv()
    assert version == b"RFB 003.008\n", version
    ws.send(version)
    _, types = ws.recv()
    assert 1 in types[1:1 + types[0]], types
    ws.send(bytes([1]))
    _, result = ws.recv()
    assert result == b"\0\0\0\0", result
    ws.send(bytes([1]))
    _, init = ws.recv()
    width, height = int.from_bytes(init[0:2], "big"), int.from_bytes(init[2:4], "big")
    name_len = int.from_bytes(init[20:24], "big")
    assert width > 0 and height > 0 and len(init) == 24 + name_len, init
    sid = cli.value("server", "show", name, "-c", "id")
    assert f"instance-{sid[:8]}".encode() in init[24:], init[24:]
    sock.close()

    sock, head, rest, _ = _ws_connect(parsed.hostname, parsed.port, path.replace("token=", "token=bad"))
    assert not head.startswith("HTTP/1.1 101"), head
    assert rest == b"" and sock.recv(100) == b"", "a bad token gets nothing"
    sock.close()
    cli.run("server", "delete", "--wait", name)
