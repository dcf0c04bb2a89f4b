"""Two `haneul serve` processes on one database and one key repository (the multi-node and HA
layout): each sees the other's writes within seconds, and neither overwrites the other."""
import pytest
import requests

from harness import Server
from support import Api, unique, wait_for


@pytest.fixture
def pair(tmp_path_factory):
    first = Server(data_dir=str(tmp_path_factory.mktemp("first"))).start()
    # Same data directory (keys, credentials files) and same database, another port.
    shared = {k: v for k, v in first.env.items()
              if k in ("HANEUL_IDENTITY__DATABASE_URL", "HANEUL_IMAGE__DATABASE_URL", "HANEUL_COMPUTE__DATABASE_URL",
                       "HANEUL_IDENTITY__ADMIN_PASSWORD")}
    second = Server(data_dir=first.data_dir, extra_env=shared)
    second.log_path = second.log_path.replace("serve.log", "serve-second.log")
    try:
        second.start()
    except BaseException:
        first.stop(kill=True)
        raise
    yield first, second
    second.stop(kill=True)
    first.stop(kill=True)


def test_a_project_created_on_one_process_appears_on_the_other(pair):
    first, second = Api(pair[0]), Api(pair[1])
    name = unique("shared")
    created = first.create("projects", "project", name=name, domain_id="default")
    wait_for(lambda: second.get(f"/projects/{created['id']}").status_code == 200, 10, 0.1,
             what="the second process to see the project")


def test_a_token_revoked_on_one_process_is_rejected_by_the_other(pair):
    first, second = Api(pair[0]), Api(pair[1])
    keeper = first.issue("admin", project_name="admin")
    victim = first.issue("admin", project_name="admin")
    assert second.validate_status(victim, token=keeper) == 200
    r = second.request("DELETE", "/auth/tokens", keeper, headers={"X-Subject-Token": victim})
    assert r.status_code == 204, r.text
    wait_for(lambda: first.validate_status(victim, token=keeper) == 404, 10, 0.1,
             what="the first process to reject the revoked token")


def test_writes_from_both_processes_are_all_kept(pair):
    first, second = Api(pair[0]), Api(pair[1])
    names = [unique("both") for _ in range(6)]
    for i, name in enumerate(names):
        (first if i % 2 == 0 else second).create("projects", "project", name=name, domain_id="default")
    def all_seen(api):
        listed = {p["name"] for p in api.get("/projects").json()["projects"]}
        return set(names) <= listed
    wait_for(lambda: all_seen(first) and all_seen(second), 10, 0.1, what="both processes to list all projects")


def test_an_image_uploaded_through_one_process_is_served_by_the_other(pair):
    first, second = pair
    token = Api(first).admin_token
    headers = {"X-Auth-Token": token}
    r = requests.post(first.image_url + "/v2/images", headers=headers, timeout=30,
                      json={"name": unique("img"), "disk_format": "raw", "container_format": "bare"})
    assert r.status_code == 201, r.text
    image_id = r.json()["id"]
    r = requests.put(f"{first.image_url}/v2/images/{image_id}/file", data=b"shared data", timeout=30,
                     headers={**headers, "Content-Type": "application/octet-stream"})
    assert r.status_code == 204, r.text

    def served():
        r = requests.get(f"{second.image_url}/v2/images/{image_id}/file", headers=headers, timeout=30)
        return r.status_code == 200 and r.content == b"shared data"
    wait_for(served, 10, 0.1, what="the second process to serve the image data")
