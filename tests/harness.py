"""Starts and stops a real `haneul serve` for the end-to-end tests.

Each server gets its own data directory, a free loopback port and, when HANEUL_TEST_PG is
set ("host:port" of tests/pg.sh), a fresh PostgreSQL database; otherwise SQLite.
Processes are started in their own process group and killed by pid when done.
"""
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid


RUNNER_VARS = ("HANEUL_BIN", "HANEUL_TEST_PG", "HANEUL_TEST_IMAGE")


_handed_out = set()


def free_port():
    """A loopback port below the kernel's ephemeral range (32768 up): a port the kernel picked
    for us could be handed to some outgoing connection before the server binds it."""
    rng = random.Random()
    low, high = 20000, 32000
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under pytest -n
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if worker.startswith("gw") and workers > 1:
        span = (high - low) // workers  # each worker its own slice: no two pick the same port
        low += int(worker[2:]) * span
        high = low + span
    while True:
        port = rng.randrange(low, high)
        if port in _handed_out:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(port)
        return port


NETNS_PREFIX = "hnt-"
NETWORK_STATE_DIR = "/run/haneul/network"


def make_host_namespace():
    """A network namespace that stands for the host of one test cloud: its data plane
    (bridges, taps, guests) lives there, and its own namespaces carry the same name as prefix.
    Nothing touches the machine's own network."""
    name = NETNS_PREFIX + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


def admin_login(srv):
    """A token of the cloud's admin scoped to the admin project (urllib only, no client
    library): (token, project id)."""
    import json
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": srv.admin_password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    req = urllib.request.Request(srv.auth_url + "/auth/tokens", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers["X-Subject-Token"], json.load(r)["token"]["project"]["id"]


def bench_cloud(prefix, run):
    """Runs `run(srv)` against a fresh test cloud (its data in a new temporary directory
    named with `prefix`) and stops the cloud after, also when `run` fails (benchmarks)."""
    import tempfile
    srv = Server(data_dir=tempfile.mkdtemp(prefix=prefix)).start()
    try:
        run(srv)
    finally:
        srv.stop()


def rss_kib(pid):
    """A process's resident memory, KiB (benchmarks)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(xs, p):
    """The `p` quantile of durations `xs` (seconds), in milliseconds (benchmarks)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000 if xs else float("nan")


def remove_namespaces(prefix):
    """Removes the namespaces whose names start with `prefix` and stops the dnsmasq processes
    a data plane left for them (by the pid files in its state directory)."""
    try:
        states = os.listdir(NETWORK_STATE_DIR)
    except OSError:
        states = []
    for d in states:
        if not d.startswith(prefix):
            continue
        try:
            with open(os.path.join(NETWORK_STATE_DIR, d, "pid")) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "dnsmasq":
                    os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        subprocess.run(["rm", "-rf", os.path.join(NETWORK_STATE_DIR, d)])
    try:
        names = os.listdir("/run/netns")
    except OSError:
        names = []
    for ns in names:
        if ns.startswith(prefix):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def create_pg_database(hostport):
    host, port = hostport.split(":")
    name = "haneul_" + uuid.uuid4().hex[:12]
    subprocess.run(["createdb", "-h", host, "-p", port, "-U", "postgres", name], check=True)
    return f"postgres://postgres@{host}:{port}/{name}"


class Server:
    def __init__(self, binary=None, data_dir=None, extra_env=None, in_netns=False):
        # in_netns: `haneul serve` itself runs inside the cloud's host namespace (its APIs on
        # that namespace's loopback), so a client run there too reaches both the APIs and
        # the guests' floating IPs (tempest's SSH validation).
        self.in_netns = in_netns
        self.binary = binary or os.environ["HANEUL_BIN"]
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="haneul-e2e-")
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = free_port()
        self.image_port = free_port()
        self.compute_port = free_port()
        self.placement_port = free_port()
        self.network_port = free_port()
        self.metadata_port = free_port()
        self.agent_port = free_port()
        self.console_port = free_port()
        # The runner's own HANEUL_BIN / HANEUL_TEST_PG are not server settings: `haneul` reads
        # every HANEUL_* variable as a config key and refuses unknown ones.
        self.env = {k: v for k, v in os.environ.items() if k not in RUNNER_VARS}
        self.env.update({
            "HANEUL_DATA_DIR": self.data_dir,
            "HANEUL_IDENTITY__PORT": str(self.port),
            "HANEUL_IMAGE__PORT": str(self.image_port),
            "HANEUL_COMPUTE__PORT": str(self.compute_port),
            "HANEUL_PLACEMENT__PORT": str(self.placement_port),
            "HANEUL_NETWORK__PORT": str(self.network_port),
            "HANEUL_COMPUTE__METADATA_PORT": str(self.metadata_port),
            "HANEUL_AGENT__PORT": str(self.agent_port),
            "HANEUL_AGENT__CONSOLE_PORT": str(self.console_port),
            # Agents report every second, and a host is down after 10 s without a report.
            "HANEUL_AGENT__REPORT_INTERVAL": "1",
            "HANEUL_COMPUTE__SERVICE_DOWN_TIME": "10",
            "HANEUL_SERVER__BIND": "127.0.0.1",
            "HANEUL_SERVER__PUBLIC_HOST": "127.0.0.1",
            "HANEUL_IDENTITY__ADMIN_PASSWORD": "secret-" + uuid.uuid4().hex[:8],
        })
        pg = os.environ.get("HANEUL_TEST_PG")
        if pg:
            url = create_pg_database(pg)
            self.env["HANEUL_IDENTITY__DATABASE_URL"] = url
            self.env["HANEUL_IMAGE__DATABASE_URL"] = url
            self.env["HANEUL_COMPUTE__DATABASE_URL"] = url
            self.env["HANEUL_PLACEMENT__DATABASE_URL"] = url
            self.env["HANEUL_NETWORK__DATABASE_URL"] = url
        # The cloud's "host" for networking is a namespace of its own (see make_host_namespace).
        self.netns = make_host_namespace()
        self.env.update({
            "HANEUL_NETWORK__HOST_NAMESPACE": self.netns,
            "HANEUL_NETWORK__NAMESPACE_PREFIX": self.netns + "-",
            # Tests make their own networks (tempest's `public` among them); one test turns
            # the demo layout back on.
            "HANEUL_NETWORK__DEMO_LAYOUT": "false",
        })
        self.env.update(extra_env or {})
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "serve.log")

    @property
    def auth_url(self):
        return f"http://127.0.0.1:{self.port}/v3"

    @property
    def image_url(self):
        return f"http://127.0.0.1:{self.image_port}"

    @property
    def compute_url(self):
        return f"http://127.0.0.1:{self.compute_port}/v2.1"

    @property
    def placement_url(self):
        return f"http://127.0.0.1:{self.placement_port}"

    @property
    def network_url(self):
        return f"http://127.0.0.1:{self.network_port}"

    @property
    def metadata_url(self):
        return f"http://127.0.0.1:{self.metadata_port}"

    @property
    def admin_password(self):
        return self.env["HANEUL_IDENTITY__ADMIN_PASSWORD"]

    def start(self, timeout=60):
        log = open(self.log_path, "ab")
        cmd = [self.binary, "serve"]
        if self.in_netns:
            # `ip netns exec` execs serve: the pid stays the server's.
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haneul serve exited with {self.proc.returncode}; see {self.log_path}")
            if self._answers():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"haneul serve did not answer within {timeout}s; see {self.log_path}")

    def _answers(self):
        if self.in_netns:
            probe = f"import urllib.request as u; u.urlopen({self.auth_url!r}, timeout=1)"
            return self.in_host(sys.executable, "-c", probe, stderr=subprocess.DEVNULL).returncode == 0
        try:
            with urllib.request.urlopen(self.auth_url, timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def qemu_pids(self):
        """QEMU processes of this server's instances (their pid files are under its data dir)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"qemu-system-x86_64") and any(self.data_dir.encode() in a for a in args):
                pids.append(int(entry))
        return pids

    def stop(self, kill=False, keep_instances=False):
        """Stops `haneul serve`; also kills its instances' QEMU processes unless asked to keep
        them (a restart test checks that they survive)."""
        self._stop_serve(kill)
        if not keep_instances:
            for pid in self.qemu_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if getattr(self, "netns", None):
                remove_namespaces(self.netns)

    def in_host(self, *cmd, **kw):
        """Runs a command inside this cloud's host namespace."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *cmd], **kw)

    def _stop_serve(self, kill=False):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def os_env(self, user="admin", password=None, project="admin"):
        """Environment for the `openstack` CLI as the given user."""
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("OS_"):
                del env[k]
        env.update({
            "OS_AUTH_URL": self.auth_url,
            "OS_USERNAME": user,
            "OS_PASSWORD": password or self.admin_password,
            "OS_USER_DOMAIN_NAME": "Default",
            "OS_IDENTITY_API_VERSION": "3",
            "OS_REGION_NAME": "RegionOne",
        })
        if project:
            env.update({"OS_PROJECT_NAME": project, "OS_PROJECT_DOMAIN_NAME": "Default"})
        return env


class Agent:
    """A second compute host on this machine: `haneul agent` with its own data directory
    (instances, image cache) and host name, reporting to `server` as its service user."""

    def __init__(self, server, data_dir, host):
        self.server = server
        self.data_dir = str(data_dir)
        self.host = host
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = free_port()
        self.console_port = free_port()
        with open(os.path.join(server.data_dir, "service-password")) as f:
            password = f.read().strip()
        self.env = {k: v for k, v in os.environ.items() if k not in RUNNER_VARS}
        self.env.update({
            "HANEUL_DATA_DIR": self.data_dir,
            "HANEUL_SERVER__BIND": "127.0.0.1",
            "HANEUL_SERVER__PUBLIC_HOST": "127.0.0.1",
            "HANEUL_COMPUTE__HOST": host,
            "HANEUL_AGENT__PORT": str(self.port),
            "HANEUL_AGENT__CONSOLE_PORT": str(self.console_port),
            "HANEUL_AGENT__AUTH_URL": server.auth_url,
            "HANEUL_AGENT__PASSWORD": password,
            "HANEUL_AGENT__REPORT_INTERVAL": "1",
            # A compute node: guests' taps only, in a host namespace of its own.
            "HANEUL_NETWORK__NETWORK_NODE": "false",
        })
        self.netns = make_host_namespace()
        self.env.update({
            "HANEUL_NETWORK__HOST_NAMESPACE": self.netns,
            "HANEUL_NETWORK__NAMESPACE_PREFIX": self.netns + "-",
        })
        self.binary = server.binary
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "agent.log")

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "agent"], env=self.env, stdout=log, stderr=log,
                                     start_new_session=True)
        return self

    # Found, stopped and cleaned up as a server's are (its process, its data directory's QEMUs).
    qemu_pids = Server.qemu_pids
    stop = Server.stop
    _stop_serve = Server._stop_serve
