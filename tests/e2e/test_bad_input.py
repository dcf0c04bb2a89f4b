"""Malformed, mistyped, incomplete, oversized and dangling requests get Keystone's 4xx with its
fault body `{"error": {"code", "title", "message"}}` and an `x-openstack-request-id`."""
import json
import uuid

import pytest
import requests
from urllib3.util.wait import wait_for_read

from support import DEFAULT_DOMAIN_ID, HTTP_TIMEOUT, assert_fault, unique

MAX_BODY = 114688


def post_raw(api, path, data, token=None, content_type="application/json"):
    return api.request("POST", path, token, data=data, headers={"Content-Type": content_type})


@pytest.mark.parametrize("path", ["/users", "/projects", "/auth/tokens"])
def test_malformed_json_body_is_400(api, path):
    assert_fault(post_raw(api, path, b'{"user": {"name": "x",'), 400, "Bad Request")


@pytest.mark.parametrize("body", ["[]", '"user"', "42", "null"], ids=["array", "string", "number", "null"])
def test_json_body_that_is_not_an_object_is_400(api, body):
    assert_fault(post_raw(api, "/users", body), 400, "Bad Request")


def test_user_enabled_as_string_is_400(api):
    r = api.request("POST", "/users", json={"user": {"name": unique("user"), "enabled": "yes"}})
    assert_fault(r, 400, "Bad Request")


@pytest.mark.parametrize("collection,member", [("users", "user"), ("projects", "project"), ("domains", "domain"),
                                               ("groups", "group"), ("roles", "role")])
def test_name_as_number_is_400(api, collection, member):
    assert_fault(api.request("POST", f"/{collection}", json={member: {"name": 42}}), 400, "Bad Request")


def test_project_enabled_as_string_on_update_is_400(api):
    project = api.new_project()
    r = api.request("PATCH", f"/projects/{project['id']}", json={"project": {"enabled": "yes"}})
    assert_fault(r, 400, "Bad Request")
    assert api.get(f"/projects/{project['id']}").json()["project"]["enabled"] is True


@pytest.mark.parametrize("collection,member", [("users", "user"), ("projects", "project"), ("domains", "domain"),
                                               ("groups", "group"), ("roles", "role")])
def test_create_without_required_name_is_400(api, collection, member):
    assert_fault(api.request("POST", f"/{collection}", json={member: {"description": "no name"}}), 400, "Bad Request")


@pytest.mark.parametrize("collection", ["users", "projects", "domains", "groups", "roles", "services", "endpoints"])
def test_create_without_the_member_object_is_400(api, collection):
    assert_fault(api.request("POST", f"/{collection}", json={}), 400, "Bad Request")


def test_endpoint_without_url_is_400(api):
    service = api.create("services", "service", type="e2e-bad-input", name=unique("svc"))
    try:
        r = api.request("POST", "/endpoints", json={"endpoint": {"service_id": service["id"], "interface": "public"}})
        assert_fault(r, 400, "Bad Request")
    finally:
        api.delete("services", service["id"])


@pytest.mark.parametrize("body", [
    {},
    {"auth": {}},
    {"auth": {"identity": {}}},
    {"auth": {"identity": {"methods": ["password"]}}},
    {"auth": {"identity": {"methods": "password", "password": {"user": {"name": "admin"}}}}},
], ids=["empty", "no-identity", "no-methods", "no-password-member", "methods-not-a-list"])
def test_auth_request_missing_or_mistyped_fields_is_400(api, body):
    assert_fault(api.request("POST", "/auth/tokens", False, json=body), 400, "Bad Request")


def test_oversize_body_is_413(api):
    body = json.dumps({"user": {"name": unique("big"), "description": "x" * (MAX_BODY + 1)}}).encode()
    assert len(body) > MAX_BODY
    err = assert_fault(post_raw(api, "/users", body), 413)
    assert err["code"] == 413
    assert not api.get("/users", params={"name__startswith": "e2e-big-"}).json()["users"]


def test_oversize_auth_body_is_413_without_a_token(api):
    body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": DEFAULT_DOMAIN_ID}, "password": "x" * (MAX_BODY + 1)}}}}}).encode()
    assert_fault(post_raw(api, "/auth/tokens", body, token=False), 413)


def test_body_just_under_the_limit_is_accepted(api):
    name = unique("near-limit")
    overhead = len(json.dumps({"project": {"name": name, "domain_id": DEFAULT_DOMAIN_ID, "description": ""}}))
    body = json.dumps({"project": {"name": name, "domain_id": DEFAULT_DOMAIN_ID,
                                   "description": "x" * (MAX_BODY - overhead - 1)}}).encode()
    assert len(body) < MAX_BODY
    r = post_raw(api, "/projects", body)
    assert r.status_code == 201, r.text[:300]


@pytest.mark.parametrize("collection", ["users", "projects", "domains", "groups", "roles", "regions", "services",
                                        "endpoints"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_id_is_404(api, collection, method):
    member = {"users": "user", "projects": "project", "domains": "domain", "groups": "group", "roles": "role",
              "regions": "region", "services": "service", "endpoints": "endpoint"}[collection]
    kw = {"json": {member: {"description": "x"}}} if method == "PATCH" else {}
    rid = uuid.uuid4().hex
    err = assert_fault(api.request(method, f"/{collection}/{rid}", **kw), 404, "Not Found")
    assert rid in err["message"], err


def test_grant_of_unknown_role_is_404(api):
    project = api.new_project()
    user, _ = api.new_user()
    r = api.request("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{uuid.uuid4().hex}")
    assert_fault(r, 404, "Not Found")


def test_grant_to_unknown_user_is_404(api):
    project = api.new_project()
    r = api.request("PUT", f"/projects/{project['id']}/users/{uuid.uuid4().hex}/roles/{api.role_id('member')}")
    assert_fault(r, 404, "Not Found")


def test_validating_a_garbage_token_is_404(api):
    r = api.get("/auth/tokens", headers={"X-Subject-Token": "not-a-token"})
    assert_fault(r, 404, "Not Found")


def test_garbage_auth_token_is_401(api):
    assert_fault(api.get("/users", token="not-a-token"), 401, "Unauthorized")


def test_missing_auth_token_is_401(api):
    assert_fault(api.get("/users", token=False), 401, "Unauthorized")


def _password_auth(api, user, domain, scope=None):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": domain, "password": api.srv.admin_password}}}}}
    if scope:
        body["auth"]["scope"] = scope
    return api.request("POST", "/auth/tokens", False, json=body)


def test_password_auth_with_unknown_user_name_is_401(api):
    assert_fault(_password_auth(api, unique("nobody"), {"name": "Default"}), 401, "Unauthorized")


def test_password_auth_with_unknown_user_domain_name_is_401(api):
    assert_fault(_password_auth(api, "admin", {"name": unique("nodomain")}), 401, "Unauthorized")


def test_scope_to_unknown_project_name_is_401(api):
    scope = {"project": {"name": unique("noproject"), "domain": {"name": "Default"}}}
    assert_fault(_password_auth(api, "admin", {"name": "Default"}, scope), 401, "Unauthorized")


def test_scope_to_unknown_project_id_is_401(api):
    scope = {"project": {"id": uuid.uuid4().hex}}
    assert_fault(_password_auth(api, "admin", {"name": "Default"}, scope), 401, "Unauthorized")


@pytest.mark.parametrize("collection", ["users", "projects", "domains", "groups", "roles"])
def test_name_filter_with_unknown_name_lists_nothing(api, collection):
    r = api.get(f"/{collection}", params={"name": unique("nothing")})
    assert r.status_code == 200, r.text
    assert r.json()[collection] == []


@pytest.mark.parametrize("path", ["/auth/tokens", "/users"])
def test_server_that_answers_401_before_reading_the_body_says_connection_close(server, path):
    """A 401 may be sent before the request body was read (requests writes headers and body
    separately, so that happens about a third of the time). The server must then either read
    the rest of the body and keep the connection, or send `Connection: close` with the 401;
    closing silently makes a client that reuses the pooled connection for its next request fail
    with "Remote end closed connection without response" now and then."""
    http = requests.Session()
    url = server.auth_url + path
    for _ in range(40):
        r = http.post(url, data=b'{"x": 1}', stream=True, timeout=HTTP_TIMEOUT,
                      headers={"Content-Type": "application/json", "X-Auth-Token": "invalid"})
        sock = getattr(r.raw.connection, "sock", None)
        assert_fault(r, 401, "Unauthorized")
        if "close" in r.headers.get("connection", "").lower():
            continue  # announced: the client does not reuse the connection
        # Readable with nothing left to read means the server closed (or reset) the connection.
        closed = wait_for_read(sock, timeout=0.05)
        assert not closed, (
            f"POST {path} with an invalid token: 401 without `Connection: close`, then the server "
            f"closed the connection; response headers {dict(r.headers)}")
