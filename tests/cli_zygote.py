"""Runs the unmodified `openstack` CLI (python-openstackclient's own `main`) without paying
its start-up for every call: this process imports the CLI once, then forks a child per
command, which runs `openstackclient.shell.main(argv)` exactly as the `openstack` script does,
with the caller's environment, working directory and a closed stdin, its output going to files.
About 0.1 s a call instead of about 1 s of imports.

Protocol (one JSON object per line): stdin gets {"argv", "env", "cwd", "timeout"}, stdout
answers {"rc", "stdout", "stderr", "timed_out"}. The process is single-threaded, so forking it
is safe."""
import json
import os
import signal
import sys
import tempfile
import time

import openstackclient.shell as shell
# What most commands load: imported here once instead of in every child.
import openstack.connection  # noqa: F401
import openstackclient.compute.v2.server  # noqa: F401
import openstackclient.identity.v3.project  # noqa: F401
import openstackclient.image.v2.image  # noqa: F401
import openstackclient.network.v2.port  # noqa: F401


def run(req):
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            os.environ.clear()
            os.environ.update(req["env"])
            if req.get("cwd"):
                os.chdir(req["cwd"])
            sys.argv = ["openstack", *req["argv"]]
            rc = shell.main(req["argv"])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - reported as the CLI would: a traceback, exit 1
            import traceback
            traceback.print_exc()
            rc = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc or 0)
    deadline = time.monotonic() + req.get("timeout", 120)
    timed_out = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            timed_out = True
            break
        time.sleep(0.005)
    rc = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    return {"rc": rc, "stdout": out.read().decode(errors="replace"), "stderr": err.read().decode(errors="replace"),
            "timed_out": timed_out}


def main():
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
