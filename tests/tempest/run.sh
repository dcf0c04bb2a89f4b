#!/usr/bin/env bash
# Runs tempest's API tests for one service against a running haneul, with the unmodified
# tempest from PyPI, and writes one status per test id.
#
# usage: tests/tempest/run.sh <regex> <auth_url> <admin_password> <out_dir>
# env:   VENV (python venv with tempest), CONCURRENCY (default 2); NOVA_AVAILABLE=true for the
#        compute tests (off otherwise: with it on, image tests would try to boot servers); SC_LOCKOUT_FAILURE_ATTEMPTS,
#        SC_LOCKOUT_DURATION, SC_UNIQUE_LAST_PASSWORD_COUNT turn on the security compliance
#        tests with the values the server was started with; HANEUL_TEST_IMAGE, the guest that
#        compute tests boot (uploaded as image_ref when NOVA_AVAILABLE=true); NEUTRON_AVAILABLE=true
#        for the network tests (an external network `public` is made first, as DevStack has one);
#        VALIDATION=true for tests that log in to their guests (run it inside the cloud's host
#        namespace, see with_server.py).
# out:   <out_dir>/results.json ({test_id: success|fail|skip|not-run}), results.subunit, tempest.log
set -euo pipefail
regex=$1 auth_url=$2 password=$3 out=$4
VENV=${VENV:-/var/cache/haneul-ci/venv}
here=$(cd "$(dirname "$0")" && pwd)
ws="$out/ws"
rm -rf "$ws" "$out/workspaces.yaml"; mkdir -p "$out"

# Keep tempest's own workspace registry out of the operator's home.
export HOME="$out/home"; mkdir -p "$HOME"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
tempest init --workspace-path "$out/workspaces.yaml" --name haneul "$ws" >/dev/null 2>&1
mkdir -p "$ws/etc" "$ws/logs" "$ws/lock"
export TEMPEST_CONFIG_DIR="$ws/etc" TEMPEST_CONFIG=tempest.conf

# Compute tests boot the test guest (HANEUL_TEST_IMAGE): upload it as a public image first.
# A second copy is image_ref_alt (tests that filter by image need two).
image_ref=
image_ref_alt=
upload() {
  OS_AUTH_URL=$auth_url OS_USERNAME=admin OS_PASSWORD=$password OS_PROJECT_NAME=admin \
    OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3 \
    openstack image create --public --disk-format qcow2 --container-format bare \
      --file "$HANEUL_TEST_IMAGE" "$1" -f value -c id
}
admin_cli() {
  OS_AUTH_URL=$auth_url OS_USERNAME=admin OS_PASSWORD=$password OS_PROJECT_NAME=admin \
    OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3 openstack "$@"
}
# The network tests want an external network for routers and floating IPs (public_network_id).
public_network_id=
if [ "${NEUTRON_AVAILABLE:-false}" = true ]; then
  public_network_id=$(admin_cli network create --external public -f value -c id)
  admin_cli subnet create --network public --subnet-range 172.24.4.0/22 --gateway 172.24.4.1 --no-dhcp public-subnet >/dev/null
fi
if [ "${NOVA_AVAILABLE:-false}" = true ] && [ -n "${HANEUL_TEST_IMAGE:-}" ]; then
  image_ref=$(upload cirros-0.6.3-x86_64-disk)
  image_ref_alt=$(upload cirros-0.6.3-x86_64-disk-alt)
fi

cat > "$ws/etc/tempest.conf" <<CONF
[DEFAULT]
log_dir = $ws/logs
log_file = tempest.log

[oslo_concurrency]
lock_path = $ws/lock

[auth]
use_dynamic_credentials = true
admin_username = admin
admin_password = $password
admin_project_name = admin
admin_domain_name = Default
admin_user_domain_name = Default
admin_project_domain_name = Default
default_credentials_domain_name = Default
# With the network service on and guests booting, each test's credentials get a network,
# subnet and router of their own (as in the gate).
create_isolated_networks = $([ "${NEUTRON_AVAILABLE:-false}" = true ] && [ "${NOVA_AVAILABLE:-false}" = true ] && echo true || echo false)
tempest_roles =

[identity]
uri_v3 = $auth_url
region = RegionOne
catalog_type = identity
v3_endpoint_type = public
admin_role = admin
default_domain_id = default
admin_domain_scope = false
use_system_token = false
user_lockout_failure_attempts = ${SC_LOCKOUT_FAILURE_ATTEMPTS:-0}
user_lockout_duration = ${SC_LOCKOUT_DURATION:-0}
user_unique_last_password_count = ${SC_UNIQUE_LAST_PASSWORD_COUNT:-0}
user_minimum_password_age = 0

[identity-feature-enabled]
trust = true
access_rules = true
api_extensions = all
security_compliance = $([ -n "${SC_LOCKOUT_FAILURE_ATTEMPTS:-}" ] && echo true || echo false)
domain_specific_drivers = false
immutable_user_source = false

[service_available]
nova = ${NOVA_AVAILABLE:-false}
neutron = ${NEUTRON_AVAILABLE:-false}
glance = true
cinder = false
swift = false
horizon = false

[compute]
catalog_type = compute
endpoint_type = publicURL
region = RegionOne
flavor_ref = 42
flavor_ref_alt = 1
image_ref = $image_ref
image_ref_alt = $image_ref_alt
min_microversion = 2.1
# The newest microversion haneul serves (its version document): tests of later ones skip.
max_microversion = 2.100

[compute-feature-enabled]
api_extensions = all
# What haneul's compute does (tempest's defaults assume a full Nova with Neutron and Cinder).
resize = ${FEATURE_RESIZE:-false}
suspend = ${FEATURE_SUSPEND:-false}
rescue = ${FEATURE_RESCUE:-false}
snapshot = ${FEATURE_SNAPSHOT:-false}
pause = true
console_output = true
shelve = false
cold_migration = false
live_migration = false
interface_attach = true
attach_encrypted_volume = false
personality = false
change_password = false
vnc_console = ${FEATURE_VNC:-false}
config_drive = true
metadata_service = false
ide_bus = false

[validation]
# VALIDATION=true: tests log in to their guests over SSH through a floating IP (tempest then
# runs inside the cloud's host namespace, where floating IPs answer: with_server.py IN_NETNS).
run_validation = ${VALIDATION:-false}
connect_method = floating
auth_method = keypair
ip_version_for_ssh = 4
image_ssh_user = cirros
image_ssh_password = gocubsgo
image_alt_ssh_user = cirros
ssh_timeout = 120
connect_timeout = 20

[network]
catalog_type = network
endpoint_type = publicURL
region = RegionOne
public_network_id = $public_network_id
floating_network_name = public
project_network_cidr = 10.100.0.0/16
project_network_mask_bits = 28
project_network_v6_cidr = 2001:db8::/48
project_network_v6_mask_bits = 64
build_timeout = 60
build_interval = 1

[network-feature-enabled]
ipv6 = true
ipv6_subnet_attributes = true
floating_ips = true
# What haneul's network service lists in /v2.0/extensions (tempest reads only this setting).
api_extensions = $(printf '%s,' agent allowed-address-pairs binding ext-gw-mode external-net extra_dhcp_opt extraroute \
  fip-port-details ip-substring-filtering net-mtu net-mtu-writable pagination port-security project-id provider quotas \
  quota_details router security-group security-groups-normalized-cidr service-type sorting standard-attr-description \
  standard-attr-revisions standard-attr-tag standard-attr-timestamp stateful-security-group subnet-external-network \
  subnet-service-types subnet_allocation default-subnetpools tag | sed 's/,$//')

[image]
catalog_type = image
endpoint_type = publicURL
region = RegionOne
# bare/raw first: many tests use container_formats[0] and disk_formats[0]. ListUserImagesTest
# uploads random bytes for the first six pairs, so every bare pair is raw or uninspectable.
container_formats = bare,ami,ari,aki,ovf,ova
disk_formats = raw,ami,ari,aki
image_caching_enabled = false
# empty: the tasks API (ImageTaskCreate) is not served
http_image =

[image-feature-enabled]
api_v2 = true
import_image = true
os_glance_reserved = true
manage_locations = false
image_conversion = false
image_format_enforcement = false
do_secure_hash = true
http_store_enabled = false
store_weight_enabled = false

[enforce_scope]
keystone = false
glance = false
neutron = false
CONF

cd "$ws"
tempest run --list-tests --regex "$regex" 2>/dev/null | grep '^tempest\.' > "$out/listed.txt" || true
set +e
tempest run --regex "$regex" --concurrency "${CONCURRENCY:-2}" --subunit > "$out/results.subunit" 2> "$out/tempest-run.err"
set -e
python3 "$here/subunit_to_json.py" "$out/listed.txt" < "$out/results.subunit" > "$out/results.json"
cp "$ws/logs/tempest.log" "$out/tempest.log" 2>/dev/null || true
python3 - "$out/results.json" <<'PY'
import json, sys, collections
r = json.load(open(sys.argv[1]))
c = collections.Counter(r.values())
print(f"tempest: {c['success']} passed, {c['fail']} failed, {c['skip']} skipped, {c['not-run']} not run, of {len(r)}")
PY
