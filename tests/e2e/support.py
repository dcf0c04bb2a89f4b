"""Helpers for the end-to-end suite: starting servers and talking to them with the official
clients only (the venv's `openstack` CLI, keystoneauth1 and plain `requests`)."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3 as ks_v3

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from harness import Server  # noqa: E402

OPENSTACK = os.path.join(os.path.dirname(sys.executable), "openstack")
if not os.path.exists(OPENSTACK):
    OPENSTACK = shutil.which("openstack") or OPENSTACK

DEFAULT_DOMAIN_ID = "default"
CLI_TIMEOUT = 120
HTTP_TIMEOUT = 30


def unique(prefix):
    """A name no other test (or earlier run against the same server) uses."""
    return f"e2e-{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(condition, timeout=10.0, interval=0.05, what="condition"):
    """Polls `condition()` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def log_tail(srv, n=40):
    try:
        with open(srv.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def start_server(data_dir, extra_env=None):
    srv = Server(data_dir=str(data_dir), extra_env=extra_env)
    try:
        srv.start()
    except BaseException:
        srv.stop(kill=True)
        raise
    return srv


def assert_fault(resp, status, title=None):
    """Keystone's error contract: the status, a JSON `{"error": {code, title, message}}` body
    whose code is the status, and the request id header every OpenStack service sets."""
    assert resp.status_code == status, (
        f"{resp.request.method} {resp.request.url}: expected {status}, got {resp.status_code}: {resp.text[:500]}")
    assert resp.headers.get("x-openstack-request-id", "").startswith("req-"), dict(resp.headers)
    assert resp.headers.get("content-type", "").startswith("application/json"), (
        f"{resp.status_code} body is not JSON: {resp.headers.get('content-type')!r} {resp.text[:300]!r}")
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"code", "title", "message"} <= set(err), body
    assert err["code"] == status, body
    assert isinstance(err["title"], str) and err["title"], body
    assert isinstance(err["message"], str) and err["message"], body
    if title is not None:
        assert err["title"] == title, body
    return err


class Api:
    """Keystone v3 over plain HTTP for setting up and checking state; admin by default."""

    def __init__(self, srv):
        self.srv = srv
        self.http = requests.Session()
        self._admin_token = None

    @property
    def url(self):
        return self.srv.auth_url

    @staticmethod
    def auth_body(user, password, *, project_id=None, project_name=None, domain_id=None, system=False):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": DEFAULT_DOMAIN_ID}, "password": password}}}}}
        if project_id:
            body["auth"]["scope"] = {"project": {"id": project_id}}
        elif project_name:
            body["auth"]["scope"] = {"project": {"name": project_name, "domain": {"id": DEFAULT_DOMAIN_ID}}}
        elif domain_id:
            body["auth"]["scope"] = {"domain": {"id": domain_id}}
        elif system:
            body["auth"]["scope"] = {"system": {"all": True}}
        return body

    def issue(self, user="admin", password=None, **scope):
        """A password-authenticated token (one bcrypt on the server); returns the token id."""
        r = self.http.post(self.url + "/auth/tokens", json=self.auth_body(user, password or self.srv.admin_password, **scope),
                           timeout=HTTP_TIMEOUT)
        assert r.status_code == 201, f"issuing a token for {user} {scope}: {r.status_code} {r.text[:500]}"
        return r.headers["X-Subject-Token"]

    @property
    def admin_token(self):
        if self._admin_token is None:
            self._admin_token = self.issue("admin", project_name="admin")
        return self._admin_token

    def request(self, method, path, token=None, **kw):
        headers = dict(kw.pop("headers", {}) or {})
        if token is not False:
            headers.setdefault("X-Auth-Token", token or self.admin_token)
        url = path if path.startswith("http") else self.url + path
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.http.request(method, url, headers=headers, **kw)

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token, **kw)

    def create(self, collection, member, **fields):
        r = self.request("POST", f"/{collection}", json={member: fields})
        assert r.status_code == 201, f"creating {member} {fields}: {r.status_code} {r.text[:500]}"
        return r.json()[member]

    def delete(self, collection, rid):
        return self.request("DELETE", f"/{collection}/{rid}")

    def role_id(self, name):
        roles = self.get("/roles", params={"name": name}).json()["roles"]
        assert len(roles) == 1, roles
        return roles[0]["id"]

    def grant(self, role, user_id, *, project_id=None, domain_id=None, system=False):
        if project_id:
            target = f"/projects/{project_id}"
        elif domain_id:
            target = f"/domains/{domain_id}"
        else:
            assert system
            target = "/system"
        r = self.request("PUT", f"{target}/users/{user_id}/roles/{self.role_id(role)}")
        assert r.status_code == 204, f"granting {role}: {r.status_code} {r.text[:500]}"

    def new_project(self):
        return self.create("projects", "project", name=unique("project"), domain_id=DEFAULT_DOMAIN_ID)

    def new_user(self, role=None, **target):
        """A fresh user in the Default domain with its password, optionally granted `role`."""
        password = "pw-" + uuid.uuid4().hex
        user = self.create("users", "user", name=unique("user"), domain_id=DEFAULT_DOMAIN_ID, password=password)
        if role:
            self.grant(role, user["id"], **target)
        return user, password

    def validate_status(self, subject, token=None):
        """GET /v3/auth/tokens for `subject` (as admin unless `token`): 200 valid, 404 not."""
        return self.request("GET", "/auth/tokens", token, headers={"X-Subject-Token": subject}).status_code


class _Zygote:
    """A process that has imported the `openstack` CLI once and forks a child per command
    (tests/cli_zygote.py): the same CLI code, without a second of imports for each call. One
    command at a time; a caller that finds it busy (threads of one test) runs the CLI as a
    process of its own."""

    def __init__(self):
        self.lock = threading.Lock()
        self.proc = None

    def _start(self):
        script = os.path.join(os.path.dirname(__file__), "..", "cli_zygote.py")
        self.proc = subprocess.Popen([sys.executable, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        if json.loads(self.proc.stdout.readline()).get("ready") is not True:
            raise RuntimeError("the CLI zygote did not start")

    def run(self, argv, env):
        """A CompletedProcess, or None when busy or broken (the caller runs the CLI itself)."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            req = {"argv": list(argv), "env": env, "cwd": os.getcwd(), "timeout": CLI_TIMEOUT}
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            answer = json.loads(self.proc.stdout.readline())
        except (OSError, ValueError, RuntimeError):
            self.proc = None
            return None
        finally:
            self.lock.release()
        if answer["timed_out"]:
            raise subprocess.TimeoutExpired([OPENSTACK, *argv], CLI_TIMEOUT, answer["stdout"], answer["stderr"])
        return subprocess.CompletedProcess([OPENSTACK, *argv], answer["rc"], answer["stdout"], answer["stderr"])


_ZYGOTE = _Zygote()


class Cli:
    """The `openstack` command line (python-openstackclient as installed, run through
    `_Zygote`)."""

    def __init__(self, srv):
        self.srv = srv

    def env(self, **kw):
        return self.srv.os_env(**kw)

    def run(self, *args, env=None, check=True):
        env = env or self.srv.os_env()
        p = _ZYGOTE.run(args, env)
        if p is None:
            p = subprocess.run([OPENSTACK, *args], env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                               stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            pytest.fail(f"`openstack {' '.join(args)}` exited {p.returncode}\n"
                        f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-3000:]}\nserver log:\n{log_tail(self.srv)}")
        return p

    def json(self, *args, env=None):
        p = self.run(*args, "-f", "json", env=env)
        try:
            return json.loads(p.stdout)
        except ValueError:
            pytest.fail(f"`openstack {' '.join(args)} -f json` printed no JSON: {p.stdout[:2000]!r}")

    def value(self, *args, env=None):
        return self.run(*args, "-f", "value", env=env).stdout.strip()


def keystone_session(srv, username, password, **scope):
    """A keystoneauth1 session for a Default-domain user; scope: project_id, domain_id or system_scope."""
    auth = ks_v3.Password(auth_url=srv.auth_url, username=username, password=password,
                          user_domain_id=DEFAULT_DOMAIN_ID, **scope)
    return ks_session.Session(auth=auth)
