#!/usr/bin/env python3
"""usage: with_server.py <script> <regex> <out_dir>
Starts a fresh `haneul serve`, runs `<script> <regex> <auth_url> <admin_password> <out_dir>`,
stops the server, and exits with the script's status."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from harness import Server  # noqa: E402

script, regex, out = sys.argv[1:4]
os.makedirs(out, exist_ok=True)
srv = Server(data_dir=os.path.join(out, "data")).start()
try:
    rc = subprocess.call([script, regex, srv.auth_url, srv.admin_password, out])
finally:
    srv.stop()
    try:
        import shutil
        shutil.copy(srv.log_path, os.path.join(out, "serve.log"))
    except OSError:
        pass
sys.exit(rc)
