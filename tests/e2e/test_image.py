"""The image service (Glance v2) with the unmodified `openstack` CLI and plain HTTP: large
uploads whose sizes and checksums match md5sum/sha512sum, downloads, filters, properties and
tags, sharing between projects, and bad input that must leave no orphan file and no image stuck
in `saving`."""
import hashlib
import os
import signal
import socket
import subprocess
import time

import pytest
import requests

from support import Api, Cli, HTTP_TIMEOUT, log_tail, start_server, unique, wait_for

MIB = 1 << 20


# --------------------------------------------------------------------------- helpers

class Glance:
    """The image API over plain HTTP, as a given token."""

    def __init__(self, srv, token):
        self.srv = srv
        self.token = token
        self.http = requests.Session()

    def request(self, method, path, **kw):
        headers = {"X-Auth-Token": self.token, **(kw.pop("headers", {}) or {})}
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return self.http.request(method, self.srv.image_url + path, headers=headers, **kw)

    def create(self, **fields):
        r = self.request("POST", "/v2/images", json=fields)
        assert r.status_code == 201, f"creating image {fields}: {r.status_code} {r.text[:500]}"
        return r.json()

    def upload(self, image_id, data):
        return self.request("PUT", f"/v2/images/{image_id}/file", data=data,
                            headers={"Content-Type": "application/octet-stream"})

    def show(self, image_id):
        return self.request("GET", f"/v2/images/{image_id}")

    def status(self, image_id):
        return self.show(image_id).json()["status"]


def assert_glance_fault(resp, status):
    assert resp.status_code == status, (
        f"{resp.request.method} {resp.request.url}: expected {status}, got {resp.status_code}: {resp.text[:500]}")
    assert resp.headers.get("x-openstack-request-id", "").startswith("req-"), dict(resp.headers)
    body = resp.json()
    assert body["code"] == status and body["message"], body
    return body["message"]


def file_digest(path, algo):
    """The digest as the coreutils tool prints it (md5sum, sha512sum)."""
    out = subprocess.run([f"{algo}sum", path], capture_output=True, text=True, check=True).stdout
    return out.split()[0]


def random_file(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))
    return path


def store_files(srv):
    """Image data files and uploads in progress in the server's store."""
    root = os.path.join(srv.data_dir, "images")
    data = sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n)))
    tmp = sorted(os.listdir(os.path.join(root, "tmp")))
    return data, tmp


def member_user(api, project_id, role="member"):
    user, password = api.new_user(role, project_id=project_id)
    return user, password


def cli_env(srv, user, password, project_id):
    env = srv.os_env(user=user, password=password, project=None)
    env["OS_PROJECT_ID"] = project_id
    return env


@pytest.fixture(scope="module")
def images_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("image-server"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def env(images_server):
    api = Api(images_server)
    return api, Cli(images_server), Glance(images_server, api.admin_token)


# --------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("disk_format", ["raw", "qcow2"])
def test_cli_uploads_and_saves_a_large_image_with_matching_checksums(env, images_server, tmp_path, disk_format):
    api, cli, glance = env
    src = random_file(tmp_path / "data.raw", 100)
    if disk_format == "qcow2":
        path = str(tmp_path / "data.qcow2")
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(src), path], check=True)
        os.unlink(src)
    else:
        path = str(src)
    size = os.path.getsize(path)
    assert size >= 100 * MIB
    name = unique(f"big-{disk_format}")
    img = cli.json("image", "create", "--file", path, "--disk-format", disk_format, "--container-format", "bare",
                   name)
    assert img["status"] == "active", img
    assert img["size"] == size
    assert img["checksum"] == file_digest(path, "md5")
    shown = glance.show(img["id"]).json()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == file_digest(path, "sha512")
    assert shown["virtual_size"] == (100 * MIB)

    out = str(tmp_path / "saved")
    cli.run("image", "save", "--file", out, name)
    assert os.path.getsize(out) == size
    assert file_digest(out, "sha512") == shown["os_hash_value"]

    cli.run("image", "delete", name)
    assert glance.show(img["id"]).status_code == 404
    data, tmp = store_files(images_server)
    assert img["id"] not in data and tmp == []


def test_cli_list_filters_properties_and_tags(env, tmp_path):
    api, cli, glance = env
    small = str(random_file(tmp_path / "small.raw", 1))
    name = unique("listed")
    img = cli.json("image", "create", "--file", small, "--disk-format", "raw", "--container-format", "bare",
                   "--property", "os_distro=cirros", "--tag", "first", name)
    other = cli.json("image", "create", "--file", small, "--disk-format", "raw", "--container-format", "bare",
                     unique("other"))

    listed = cli.json("image", "list", "--name", name, "--status", "active")
    assert [i["ID"] for i in listed] == [img["id"]]
    assert cli.json("image", "list", "--name", name, "--status", "queued") == []
    tagged = {i["ID"] for i in cli.json("image", "list", "--tag", "first")}
    assert img["id"] in tagged and other["id"] not in tagged

    cli.run("image", "set", "--property", "purpose=e2e", "--tag", "second", name)
    shown = cli.json("image", "show", name)
    assert shown["properties"]["purpose"] == "e2e"
    assert shown["properties"]["os_distro"] == "cirros"
    assert sorted(shown["tags"]) == ["first", "second"]
    # Extra properties filter server-side too.
    r = glance.request("GET", "/v2/images", params={"os_distro": "cirros", "purpose": "e2e"})
    assert [i["id"] for i in r.json()["images"]] == [img["id"]]
    r = glance.request("GET", "/v2/images", params={"size_min": 1, "size_max": MIB, "disk_format": "raw",
                                                    "sort": "name:asc", "limit": 1})
    body = r.json()
    assert len(body["images"]) == 1 and body["next"].startswith("/v2/images?")
    cli.run("image", "unset", "--property", "purpose", name)
    assert "purpose" not in cli.json("image", "show", name)["properties"]
    for i in (img, other):
        cli.run("image", "delete", i["id"])


def test_sharing_a_private_and_a_shared_image_with_another_project(env, images_server, tmp_path):
    api, cli, glance = env
    small = str(random_file(tmp_path / "small.raw", 1))
    project_b = api.new_project()
    user_b, pw_b = member_user(api, project_b["id"])
    env_b = cli_env(images_server, user_b["name"], pw_b, project_b["id"])

    private = cli.json("image", "create", "--file", small, "--disk-format", "raw", "--container-format", "bare",
                       "--private", unique("private"))
    shared = cli.json("image", "create", "--file", small, "--disk-format", "raw", "--container-format", "bare",
                      "--shared", unique("shared"))

    def b_list():
        return {i["ID"] for i in cli.json("image", "list", env=env_b)}

    assert private["id"] not in b_list() and shared["id"] not in b_list()
    p = cli.run("image", "show", private["id"], env=env_b, check=False)
    assert p.returncode != 0 and "No Image found" in (p.stderr + p.stdout), p.stderr

    member = cli.json("image", "add", "project", shared["id"], project_b["id"])
    assert member["status"] == "pending"
    # Pending: not listed, but visible by id so that the member can answer.
    assert shared["id"] not in b_list()
    cli.run("image", "set", "--accept", shared["id"], env=env_b)
    assert shared["id"] in b_list()
    assert private["id"] not in b_list()
    # The member can download but not change or delete the image.
    out = str(tmp_path / "b-saved")
    cli.run("image", "save", "--file", out, shared["id"], env=env_b)
    assert file_digest(out, "md5") == file_digest(small, "md5")
    p = cli.run("image", "delete", shared["id"], env=env_b, check=False)
    assert p.returncode != 0
    assert glance.show(shared["id"]).status_code == 200

    cli.run("image", "set", "--reject", shared["id"], env=env_b)
    assert shared["id"] not in b_list()
    cli.run("image", "remove", "project", shared["id"], project_b["id"])
    token_b = Api(images_server).issue(user_b["name"], pw_b, project_id=project_b["id"])
    assert Glance(images_server, token_b).show(shared["id"]).status_code == 404
    for i in (private, shared):
        cli.run("image", "delete", i["id"])


def test_public_images_need_admin_and_community_ones_are_listed_on_request(env, images_server):
    api, cli, glance = env
    user, pw, project = _user_with_project(api)
    member = Glance(images_server, api.issue(user["name"], pw, project_id=project))
    assert_glance_fault(member.request("POST", "/v2/images", json={"name": unique("p"), "visibility": "public"}), 403)
    community = member.create(name=unique("community"), visibility="community")
    user2, pw2, project2 = _user_with_project(api)
    g2 = Glance(images_server, api.issue(user2["name"], pw2, project_id=project2))
    default = {i["id"] for i in g2.request("GET", "/v2/images").json()["images"]}
    assert community["id"] not in default
    listed = {i["id"] for i in g2.request("GET", "/v2/images", params={"visibility": "community"}).json()["images"]}
    assert community["id"] in listed
    assert g2.show(community["id"]).status_code == 200
    assert_glance_fault(g2.request("DELETE", f"/v2/images/{community['id']}"), 403)
    assert member.request("DELETE", f"/v2/images/{community['id']}").status_code == 204


def _user_with_project(api):
    project = api.new_project()
    user, pw = member_user(api, project["id"])
    return user, pw, project["id"]


# --------------------------------------------------------------------------- bad input

def test_wrong_content_types_are_415(env):
    api, cli, glance = env
    img = glance.create(name=unique("ct"), disk_format="raw", container_format="bare")
    r = glance.request("PUT", f"/v2/images/{img['id']}/file", data=b"abc", headers={"Content-Type": "application/json"})
    assert_glance_fault(r, 415)
    r = glance.request("PATCH", f"/v2/images/{img['id']}", json=[{"op": "add", "path": "/a", "value": "b"}])
    assert_glance_fault(r, 415)
    assert "openstack-images-v2.1-json-patch" in r.headers.get("accept-patch", "")
    assert glance.status(img["id"]) == "queued"


@pytest.mark.parametrize("patch,status", [
    ('{"op": "add"}', 400),
    ('[{"op": "move", "from": "/name", "path": "/x"}]', 400),
    ('[{"op": "add", "path": "/a/b", "value": "c"}]', 400),
    ('[{"op": "add", "path": "/min_ram", "value": -1}]', 400),
    ('[{"op": "add", "path": "/foo", "value": 5}]', 400),
    ('[{"op": "replace", "path": "/status", "value": "active"}]', 403),
    ('[{"op": "add", "path": "/os_glance_x", "value": "y"}]', 403),
    ('[{"op": "remove", "path": "/name"}]', 403),
    ('[{"op": "remove", "path": "/missing"}]', 409),
    ('[{"op": "replace", "path": "/missing", "value": "x"}]', 409),
    ('[{"op": "add", "path": "/name"', 400),
])
def test_bad_json_patches_get_glance_codes_and_change_nothing(env, patch, status):
    api, cli, glance = env
    img = glance.create(name=unique("patch"))
    r = glance.request("PATCH", f"/v2/images/{img['id']}", data=patch,
                       headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert_glance_fault(r, status)
    after = glance.show(img["id"]).json()
    assert after["name"] == img["name"] and after["min_ram"] == 0 and after["status"] == "queued"


def test_a_qcow2_with_a_backing_file_is_refused_and_leaves_nothing(env, images_server, tmp_path):
    api, cli, glance = env
    base = str(tmp_path / "base.qcow2")
    over = str(tmp_path / "over.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "16M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", "/etc/passwd", over, "16M"], check=True)
    for declared in ("qcow2", "raw"):
        img = glance.create(name=unique("backing"), disk_format=declared, container_format="bare")
        with open(over, "rb") as f:
            msg = assert_glance_fault(glance.upload(img["id"], f), 415)
        assert "backing file" in msg, msg
        shown = glance.show(img["id"]).json()
        assert shown["status"] == "queued" and shown["size"] is None and shown["checksum"] is None
        data, tmp = store_files(images_server)
        assert img["id"] not in data and tmp == []


def test_content_that_does_not_match_the_disk_format_is_refused(env, images_server):
    api, cli, glance = env
    img = glance.create(name=unique("mismatch"), disk_format="qcow2", container_format="bare")
    msg = assert_glance_fault(glance.upload(img["id"], os.urandom(MIB)), 415)
    assert "qcow2" in msg and "raw" in msg, msg
    assert glance.status(img["id"]) == "queued"
    assert img["id"] not in store_files(images_server)[0]
    # Formats must be set before data.
    bare = glance.create(name=unique("noformat"))
    assert_glance_fault(glance.upload(bare["id"], b"x"), 400)


def test_a_second_upload_to_an_active_image_is_409(env, images_server):
    api, cli, glance = env
    img = glance.create(name=unique("twice"), disk_format="raw", container_format="bare")
    assert glance.upload(img["id"], b"first").status_code == 204
    assert_glance_fault(glance.upload(img["id"], b"second data"), 409)
    assert glance.request("GET", f"/v2/images/{img['id']}/file").content == b"first"
    shown = glance.show(img["id"]).json()
    assert shown["status"] == "active" and shown["size"] == 5


def test_quotas_from_unified_limits_are_enforced_with_413(env, images_server):
    api, cli, glance = env
    project = api.new_project()
    user, pw = member_user(api, project["id"])
    system_admin = images_server.os_env(project=None)
    system_admin["OS_SYSTEM_SCOPE"] = "all"
    for resource, value in (("image_count_total", 2), ("image_size_total", 1)):
        cli.run("limit", "create", "--service", "glance", "--project", project["id"], "--region", "RegionOne",
                "--resource-limit", str(value), resource, env=system_admin)
    g = Glance(images_server, api.issue(user["name"], pw, project_id=project["id"]))
    a = g.create(name=unique("q1"), disk_format="raw", container_format="bare")
    b = g.create(name=unique("q2"), disk_format="raw", container_format="bare")
    msg = assert_glance_fault(g.request("POST", "/v2/images", json={"name": unique("q3")}), 413)
    assert "image_count_total" in msg and project["id"] in msg, msg
    assert len(g.request("GET", "/v2/images").json()["images"]) == 2

    # 2 MiB with a declared length: refused before any byte is read.
    msg = assert_glance_fault(g.upload(a["id"], os.urandom(2 * MIB)), 413)
    assert "image_size_total" in msg, msg
    # Chunked, size unknown up front: refused when it passes the limit.
    def chunks():
        for _ in range(3):
            yield os.urandom(MIB)
    assert_glance_fault(g.upload(b["id"], chunks()), 413)
    for i in (a, b):
        shown = g.show(i["id"]).json()
        assert shown["status"] == "queued" and shown["size"] is None
        assert i["id"] not in store_files(images_server)[0]
    assert store_files(images_server)[1] == []
    assert g.upload(a["id"], os.urandom(MIB // 2)).status_code == 204
    usage = g.request("GET", "/v2/info/usage").json()["usage"]
    assert usage["image_count_total"] == {"limit": 2, "usage": 2}
    assert usage["image_size_total"]["limit"] == 1


def test_a_client_that_disconnects_mid_upload_leaves_the_image_queued(env, images_server):
    api, cli, glance = env
    img = glance.create(name=unique("cut"), disk_format="raw", container_format="bare")
    s = socket.create_connection(("127.0.0.1", images_server.image_port))
    s.sendall((f"PUT /v2/images/{img['id']}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {glance.token}\r\n"
               f"Content-Type: application/octet-stream\r\nContent-Length: {64 * MIB}\r\n\r\n").encode())
    for _ in range(4):
        s.sendall(os.urandom(MIB))
    wait_for(lambda: glance.status(img["id"]) == "saving", 10, what="upload to start")
    s.close()
    wait_for(lambda: glance.status(img["id"]) == "queued", 10, what="image back to queued")
    shown = glance.show(img["id"]).json()
    assert shown["size"] is None and shown["checksum"] is None
    wait_for(lambda: store_files(images_server)[1] == [], 10, what="temporary file removed")
    assert img["id"] not in store_files(images_server)[0]
    # And the image takes a new upload.
    assert glance.upload(img["id"], b"again").status_code == 204


def test_downloads_support_ranges_and_send_content_md5(env):
    api, cli, glance = env
    data = os.urandom(300_000)
    img = glance.create(name=unique("range"), disk_format="raw", container_format="bare")
    r = glance.request("GET", f"/v2/images/{img['id']}/file")
    assert r.status_code == 204 and r.content == b""
    assert glance.upload(img["id"], data).status_code == 204
    r = glance.request("GET", f"/v2/images/{img['id']}/file")
    assert r.content == data
    assert r.headers["Content-MD5"] == hashlib.md5(data).hexdigest()
    r = glance.request("GET", f"/v2/images/{img['id']}/file", headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206 and r.content == data[1000:2000]
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    r = glance.request("GET", f"/v2/images/{img['id']}/file", headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    assert glance.request("GET", f"/v2/images/{img['id']}/file",
                          headers={"Range": f"bytes={len(data)}-"}).status_code == 416


@pytest.mark.parametrize("method,path,body,status", [
    ("GET", "/v2/images/", None, 404),
    ("DELETE", "/v2/images/", None, 404),
    ("GET", "/v2/images/not-a-uuid", None, 404),
    ("GET", "/v2/images/c67364be-136c-4a41-9708-6543e50766a9", None, 404),  # no such image
    ("POST", "/v2/images", "{not json", 400),
    ("POST", "/v2/images", '["a list"]', 400),
    ("POST", "/v2/images", '{"disk_format": "floppy"}', 400),
    ("POST", "/v2/images", '{"container_format": "tarball"}', 400),
    ("POST", "/v2/images", '{"name": 5}', 400),
    ("POST", "/v2/images", '{"status": "active"}', 403),
    ("POST", "/v2/images", '{"self": "x"}', 403),
    ("POST", "/v2/images", '{"os_glance_foo": "x"}', 403),
    ("POST", "/v2/images", '{"id": "not-a-uuid"}', 400),
    ("GET", "/v2/images?limit=abc", None, 400),
    ("GET", "/v2/images?sort_key=owner", None, 400),
    ("GET", "/v2/images?sort=name&sort_key=name", None, 400),
    ("GET", "/v2/images?created_at=soon", None, 400),
    ("GET", "/v2/images?marker=baea84bb-ebf3-4786-9abd-135911b64dab", None, 400),  # no such marker
    ("GET", "/v2/images?visibility=everyone", None, 400),
    ("GET", "/v2/info/stores", None, 404),
])
def test_bad_requests_get_glance_codes(env, method, path, body, status):
    api, cli, glance = env
    headers = {"Content-Type": "application/json"} if body is not None else {}
    r = glance.request(method, path, data=body, headers=headers)
    assert_glance_fault(r, status)


def test_no_token_is_401(images_server):
    r = requests.get(images_server.image_url + "/v2/images", timeout=HTTP_TIMEOUT)
    assert r.status_code == 401


def test_glance_direct_import_goes_through_the_same_checks(env, images_server):
    api, cli, glance = env
    img = glance.create(name=unique("import"), disk_format="raw", container_format="bare")
    r = glance.request("PUT", f"/v2/images/{img['id']}/stage", data=b"staged bytes",
                       headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 204
    assert glance.status(img["id"]) == "uploading"
    r = glance.request("POST", f"/v2/images/{img['id']}/import", json={"method": {"name": "web-download"}})
    assert_glance_fault(r, 400)
    r = glance.request("POST", f"/v2/images/{img['id']}/import", json={"method": {"name": "glance-direct"}})
    assert r.status_code == 202
    wait_for(lambda: glance.status(img["id"]) == "active", 20, what="import to finish")
    assert glance.request("GET", f"/v2/images/{img['id']}/file").content == b"staged bytes"
    assert os.listdir(os.path.join(images_server.data_dir, "images", "staging", "tmp")) == []
    assert img["id"] not in os.listdir(os.path.join(images_server.data_dir, "images", "staging"))

    bad = glance.create(name=unique("import-bad"), disk_format="qcow2", container_format="bare")
    glance.request("PUT", f"/v2/images/{bad['id']}/stage", data=os.urandom(4096),
                   headers={"Content-Type": "application/octet-stream"})
    glance.request("POST", f"/v2/images/{bad['id']}/import", json={"method": {"name": "glance-direct"}})
    wait_for(lambda: glance.status(bad["id"]) == "queued", 20, what="refused import back to queued")
    assert bad["id"] not in store_files(images_server)[0]


def test_cli_import_uses_glance_direct(env, tmp_path):
    api, cli, glance = env
    path = str(random_file(tmp_path / "imported.raw", 3))
    name = unique("cli-import")
    img = cli.json("image", "create", "--import", "--file", path, "--disk-format", "raw", "--container-format",
                   "bare", name)
    wait_for(lambda: glance.status(img["id"]) == "active", 30, what="CLI import to finish")
    shown = glance.show(img["id"]).json()
    assert shown["checksum"] == file_digest(path, "md5") and shown["size"] == 3 * MIB
    cli.run("image", "delete", img["id"])


# --------------------------------------------------------------------------- restart

def test_an_upload_cut_by_a_crash_is_queued_again_after_restart(fresh_server):
    api = Api(fresh_server)
    glance = Glance(fresh_server, api.admin_token)
    img = glance.create(name=unique("crash"), disk_format="raw", container_format="bare")
    done = glance.create(name=unique("kept"), disk_format="raw", container_format="bare")
    assert glance.upload(done["id"], b"kept data").status_code == 204
    s = socket.create_connection(("127.0.0.1", fresh_server.image_port))
    s.sendall((f"PUT /v2/images/{img['id']}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {glance.token}\r\n"
               f"Content-Type: application/octet-stream\r\nContent-Length: {64 * MIB}\r\n\r\n").encode())
    s.sendall(os.urandom(2 * MIB))
    wait_for(lambda: glance.status(img["id"]) == "saving", 10, what="upload to start")
    fresh_server.stop(kill=True)
    s.close()
    fresh_server.start()
    api = Api(fresh_server)
    glance = Glance(fresh_server, api.admin_token)
    shown = glance.show(img["id"]).json()
    assert shown["status"] == "queued" and shown["size"] is None, shown
    assert store_files(fresh_server) == ([done["id"]], [])
    assert glance.request("GET", f"/v2/images/{done['id']}/file").content == b"kept data"
    assert "queued again" in log_tail(fresh_server, 200)
