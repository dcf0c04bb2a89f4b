#!/usr/bin/env python3
"""usage: with_server.py <script> <regex> <out_dir>
Starts a fresh `haneul serve`, runs `<script> <regex> <auth_url> <admin_password> <out_dir>`,
stops the server, and exits with the script's status. With IN_NETNS=true both run inside
the cloud's host namespace, where the guests' floating IPs answer (tempest's validation)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from harness import Server  # noqa: E402

script, regex, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
# Security compliance on, small enough for tempest's lockout test to wait out; run.sh
# writes the same values into tempest.conf.
compliance = {"LOCKOUT_FAILURE_ATTEMPTS": "2", "LOCKOUT_DURATION": "5", "UNIQUE_LAST_PASSWORD_COUNT": "2"}
in_netns = os.environ.get("IN_NETNS") == "true"
srv = Server(data_dir=os.path.join(out, "data"), in_netns=in_netns,
             extra_env={f"HANEUL_IDENTITY__{k}": v for k, v in compliance.items()}).start()
try:
    env = dict(os.environ, **{f"SC_{k}": v for k, v in compliance.items()})
    cmd = [script, regex, srv.auth_url, srv.admin_password, out]
    if in_netns:
        cmd = ["ip", "netns", "exec", srv.netns, *cmd]
    rc = subprocess.call(cmd, env=env)
finally:
    srv.stop()
    try:
        import shutil
        shutil.copy(srv.log_path, os.path.join(out, "serve.log"))
    except OSError:
        pass
sys.exit(rc)
