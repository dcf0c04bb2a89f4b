"""Version discovery as Keystone does it: `/` lists the versions with 300 Multiple Choices and
`/v3` describes v3 with its media types, so keystoneauth can find v3 from the bare URL."""
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import generic

from support import DEFAULT_DOMAIN_ID, HTTP_TIMEOUT


def root_url(server):
    return f"http://127.0.0.1:{server.port}"


def test_root_is_300_multiple_choices_listing_v3(server):
    r = requests.get(root_url(server) + "/", timeout=HTTP_TIMEOUT)
    assert r.status_code == 300, r.text
    assert r.headers.get("x-openstack-request-id", "").startswith("req-")
    values = r.json()["versions"]["values"]
    assert values[0]["id"].startswith("v3"), values
    assert values[0]["status"] == "stable"
    assert any(link["rel"] == "self" and link["href"].rstrip("/") == server.auth_url for link in values[0]["links"])


def test_v3_document_has_media_types(server):
    r = requests.get(server.auth_url, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    version = r.json()["version"]
    assert version["id"].startswith("v3")
    assert {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"} in version["media-types"]


def test_keystoneauth_discovers_v3_from_the_unversioned_url(server):
    auth = generic.Password(auth_url=root_url(server), username="admin", password=server.admin_password,
                            user_domain_id=DEFAULT_DOMAIN_ID, project_name="admin", project_domain_id=DEFAULT_DOMAIN_ID)
    sess = ks_session.Session(auth=auth)
    assert sess.get_token()
    assert sess.get_endpoint(service_type="identity", interface="public").rstrip("/") == server.auth_url
