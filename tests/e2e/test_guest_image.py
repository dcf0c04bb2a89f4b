"""The test guest image (tools/build-test-image.sh) under real QEMU (TCG): it boots, reads its
metadata from a config drive, installs the key, runs its user data, prints its markers on the
serial console, and powers off cleanly on ACPI (QMP system_powerdown)."""
import json
import os
import socket
import subprocess

from support import wait_for

IMAGE = os.environ.get("HANEUL_TEST_IMAGE", "/var/cache/haneul-ci/images/haneul-testimg.qcow2")
INSTANCE = "3f0e1c2a-1111-2222-3333-444455556666"


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.f = self.sock.makefile("rw")
        self.events = []
        json.loads(self.f.readline())
        self.call("qmp_capabilities")

    def call(self, command):
        self.f.write(json.dumps({"execute": command}) + "\n")
        self.f.flush()
        while True:
            msg = json.loads(self.f.readline())
            if "event" in msg:
                self.events.append(msg)
            elif "return" in msg or "error" in msg:
                return msg

    def wait_event(self, name, timeout):
        self.sock.settimeout(timeout)
        while not any(e["event"] == name for e in self.events):
            self.events.append(json.loads(self.f.readline()))
        return next(e for e in self.events if e["event"] == name)


def test_the_guest_boots_reads_a_config_drive_and_powers_off_on_acpi(tmp_path):
    assert os.path.exists(IMAGE), f"{IMAGE} missing: tests/run-all.sh builds it with tools/build-test-image.sh"
    drive = tmp_path / "cd" / "openstack" / "latest"
    drive.mkdir(parents=True)
    (drive / "meta_data.json").write_text(json.dumps({
        "uuid": INSTANCE, "hostname": "guest-test", "name": "guest-test",
        "public_keys": {"k1": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHaneulTestKey test@haneul\n"},
        "keys": [{"name": "k1", "type": "ssh", "data": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHaneulTestKey"}],
    }))
    (drive / "user_data").write_text("#!/bin/sh\necho user-data-says-hello\n")
    iso = tmp_path / "config.iso"
    subprocess.run(["genisoimage", "-quiet", "-J", "-r", "-V", "config-2", "-o", str(iso), str(tmp_path / "cd")],
                   check=True)
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", IMAGE, str(disk)], check=True)
    console = tmp_path / "console.log"
    qmp_path = str(tmp_path / "qmp.sock")
    proc = subprocess.Popen([
        "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-machine", "pc", "-m", "256", "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-drive", f"file={disk},if=virtio,cache=none,aio=threads",
        "-drive", f"file={iso},if=virtio,format=raw,readonly=on",
        "-device", "virtio-rng-pci", "-serial", f"file:{console}",
        "-qmp", f"unix:{qmp_path},server=on,wait=off",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        def log():
            return console.read_text(errors="replace") if console.exists() else ""
        wait_for(lambda: "HANEUL-TESTIMG: ready" in log(), 120, 0.5, what="the guest to be ready")
        text = log()
        for marker in ("HANEUL-TESTIMG: booted", "HANEUL-TESTIMG: metadata config-drive",
                       f"HANEUL-TESTIMG: instance-id {INSTANCE}", "HANEUL-TESTIMG: key installed k1",
                       "user-data-says-hello", "HANEUL-TESTIMG: user-data ran rc=0"):
            assert marker in text, f"{marker!r} not on the console:\n{text[-3000:]}"
        qmp = Qmp(qmp_path)
        qmp.call("system_powerdown")
        event = qmp.wait_event("SHUTDOWN", 60)
        assert event["data"]["guest"] is True, event
        assert proc.wait(timeout=30) == 0
        assert "HANEUL-TESTIMG: powering off" in log()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_offers_the_demo_image_once(tmp_path):
    """`haneul serve` uploads the test guest found at `compute.demo_image` as a public image
    on its first start (Packstack's demo CirrOS), and not again after a restart."""
    import shutil
    from support import Cli, start_server
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(IMAGE, data / "haneul-testimg.qcow2")
    srv = start_server(data)
    try:
        cli = Cli(srv)

        def offered():
            images = cli.json("image", "list", "--name", "cirros-0.6.3-x86_64-disk")
            return images and images[0]["Status"] == "active"
        wait_for(offered, 60, 1, what="the demo image")
        image = cli.json("image", "show", "cirros-0.6.3-x86_64-disk")
        assert image["visibility"] == "public" and image["disk_format"] == "qcow2", image
        assert image["size"] == os.path.getsize(IMAGE)
        srv.stop()
        srv.start()
        assert len(cli.json("image", "list", "--name", "cirros-0.6.3-x86_64-disk")) == 1
    finally:
        srv.stop()
