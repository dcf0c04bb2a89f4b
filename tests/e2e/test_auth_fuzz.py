"""POST /v3/auth/tokens with random JSON, JSON shaped like auth requests, truncated JSON and raw
bytes never gets a 5xx, every refusal is Keystone's fault body, and the server stays up.
Runs on a server of its own: failed password attempts must not touch the shared one."""
import json
import os
import string
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from support import Api, HTTP_TIMEOUT

# Hypothesis keeps caches in ./.hypothesis by default; keep them out of the repository.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "haneul-e2e-hypothesis"))

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def obj(**fields):
    """A JSON object with any subset of `fields`, or now and then something else entirely."""
    shaped = st.fixed_dictionaries({}, optional=fields)
    return st.one_of(shaped, shaped, shaped, json_values)


ids = st.sampled_from(["default", "admin", "", "0" * 32]) | st.text(max_size=40)
domain = obj(id=ids, name=st.sampled_from(["Default", "default"]) | st.text(max_size=20))
user = obj(id=ids, name=st.sampled_from(["admin", "demo", ""]) | st.text(max_size=20),
           domain=domain, password=st.text(max_size=40))
identity = obj(
    methods=st.lists(st.sampled_from(["password", "token", "application_credential", "totp", "external", ""])
                     | st.text(max_size=10), max_size=3),
    password=obj(user=user),
    token=obj(id=st.text(max_size=200)),
    application_credential=obj(id=ids, name=st.text(max_size=20), secret=st.text(max_size=40), user=user),
)
scope = st.just("unscoped") | obj(
    project=obj(id=ids, name=st.sampled_from(["admin", "demo"]) | st.text(max_size=20), domain=domain),
    domain=domain,
    system=obj(all=json_values),
    **{"OS-TRUST:trust": obj(id=ids)},
)
auth_requests = st.fixed_dictionaries({"auth": obj(identity=identity, scope=scope)})


def password_request(name, user_domain, password, scope):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": user_domain, "password": password}}}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return body


# Well-formed password and token requests with random leaves, to get past the parsing into the
# user, domain and scope look-ups (and now and then a wrong admin password: a bcrypt each).
password_requests = st.builds(
    password_request,
    name=st.sampled_from(["admin", "demo"]) | st.text(max_size=20) | json_values,
    user_domain=st.sampled_from([{"id": "default"}, {"name": "Default"}]) | domain,
    password=st.text(max_size=40) | json_values,
    scope=st.none() | scope,
)
token_requests = st.builds(
    lambda token, scope: {"auth": {"identity": {"methods": ["token"], "token": {"id": token}}, "scope": scope}},
    token=st.text(max_size=300) | json_values,
    scope=scope,
)


def encode(value):
    # allow_nan: NaN and Infinity are not JSON, which the server must refuse as such.
    return json.dumps(value).encode()


bodies = st.one_of(
    auth_requests.map(encode),
    auth_requests.map(encode),
    password_requests.map(encode),
    password_requests.map(encode),
    token_requests.map(encode),
    json_values.map(encode),
    st.tuples(auth_requests.map(encode), st.integers(min_value=0)).map(lambda t: t[0][: t[1] % (len(t[0]) + 1)]),
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", None])
auth_tokens = st.none() | st.text(alphabet=string.ascii_letters + string.digits + "-_=", max_size=200)
queries = st.sampled_from([None, {"nocatalog": "1"}, {"allow_expired": "1"}])


def test_random_auth_requests_never_get_a_5xx_and_the_server_survives(module_server):
    api = Api(module_server)
    url = api.url + "/auth/tokens"
    seen = {}

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=bodies, content_type=content_types, token=auth_tokens, query=queries)
    def post(body, content_type, token, query):
        # One connection per example, so that examples cannot affect each other through a
        # kept-alive connection (that is pinned separately, in test_bad_input.py).
        headers = {"Connection": "close"}
        if content_type:
            headers["Content-Type"] = content_type
        if token is not None:
            headers["X-Auth-Token"] = token
        r = api.http.post(url, data=body, headers=headers, params=query, timeout=HTTP_TIMEOUT)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, f"{r.status_code} for {body[:300]!r}: {r.text[:300]}"
        assert r.headers.get("x-openstack-request-id"), dict(r.headers)
        if r.status_code >= 400:
            fault = r.json()
            assert set(fault) == {"error"} and fault["error"]["code"] == r.status_code, r.text[:300]

    post()

    assert module_server.proc.poll() is None, "haneul serve exited during the fuzzing"
    assert api.http.get(api.url, timeout=HTTP_TIMEOUT).status_code == 200
    admin = api.issue("admin", project_name="admin")
    assert api.validate_status(admin, token=admin) == 200
    assert sum(seen.values()) >= 100, seen
