#!/usr/bin/env bash
# The whole test suite: unit tests, then the end-to-end suite (official OpenStack clients and
# tempest against a running `haneul serve`) on SQLite and again on PostgreSQL.
# Installs everything it needs (Debian packages, a Python venv from PyPI) on a fresh Debian
# machine as root; caches downloads and the cargo target directory under $CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${HANEUL_CI_CACHE:-/var/cache/haneul-ci}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
VENV=$CACHE/venv
OUT=${HANEUL_TEST_OUT:-$(mktemp -d /tmp/haneul-test.XXXXXX)}
mkdir -p "$CACHE" "$OUT"

declare -a STAGES=()
t0=$(date +%s)
stage_start=$t0
stage() {
  local now; now=$(date +%s)
  if [ -n "${CURRENT_STAGE:-}" ]; then
    STAGES+=("$(printf '%-38s %5ss' "$CURRENT_STAGE" $((now - stage_start)))")
  fi
  CURRENT_STAGE=$1; stage_start=$now
  printf '\n==== %s\n' "$1"
}
summary() {
  local rc=$?
  # Test clouds remove their network namespaces (hnt-*) themselves; a killed run's leftovers
  # go here.
  python3 -c 'import sys; sys.path.insert(0, "tests"); import harness; harness.remove_namespaces(harness.NETNS_PREFIX)' \
    2>/dev/null || true
  stage ""
  printf '\n==== stage times\n'
  printf '%s\n' "${STAGES[@]}"
  printf '%-38s %5ss\n' "total" $(( $(date +%s) - t0 ))
  printf 'logs and results: %s\n' "$OUT"
  exit $rc
}
trap summary EXIT

stage "install system packages"
need_apt=()
command -v pg_ctlcluster >/dev/null || need_apt+=(postgresql)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v curl >/dev/null || need_apt+=(curl)
command -v qemu-img >/dev/null || need_apt+=(qemu-utils)
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
command -v genisoimage >/dev/null || need_apt+=(genisoimage)
# the network data plane's tools
for pair in dnsmasq:dnsmasq-base iptables-restore:iptables ipset:ipset ebtables:ebtables ip:iproute2 sysctl:procps ping:iputils-ping nft:nftables; do
  command -v "${pair%%:*}" >/dev/null || need_apt+=("${pair#*:}")
done
# tools/build-test-image.sh's tools
for pair in busybox:busybox-static dropbear:dropbear-bin syslinux:syslinux mcopy:mtools mkfs.vfat:dosfstools \
            sfdisk:fdisk cpio:cpio dhclient:isc-dhcp-client; do
  command -v "${pair%%:*}" >/dev/null || need_apt+=("${pair#*:}")
done
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need_apt+=(syslinux-common)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stage "python venv (openstackclient, tempest)"
req=$ROOT/tests/requirements.txt
stamp=$VENV/.req-$(sha256sum "$req" | cut -c1-16)
if [ ! -f "$stamp" ]; then
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$req"
  touch "$stamp"
fi
export PATH=$VENV/bin:$PATH

stage "test guest image (tools/build-test-image.sh)"
# Its kernel (tools/build-test-kernel.sh, about 8 minutes on two cores) is cached on its own.
img_dir=$CACHE/images/$(cat tools/build-test-image.sh tools/build-test-kernel.sh | sha256sum | cut -c1-16)
[ -f "$img_dir/haneul-testimg.qcow2" ] || tools/build-test-image.sh "$img_dir"
export HANEUL_TEST_IMAGE=$img_dir/haneul-testimg.qcow2

stage "cargo build --release"
# Incremental: a fresh clone gives every source file a new mtime, so cargo rebuilds all the
# workspace's crates; rustc's incremental cache (in the cached target directory, keyed by
# content) then reuses what did not change.
CARGO_INCREMENTAL=1 cargo build --release --workspace --all-targets --locked 2>&1 | tail -3
BIN=$CARGO_TARGET_DIR/release/haneul

stage "unit tests (cargo test)"
CARGO_INCREMENTAL=1 cargo test --release --workspace --locked 2>&1 | tee "$OUT/cargo-test.log" | grep -E '^(test result|error|failures:|    [a-z_:]+$)' || true
if grep -q '^test result: FAILED' "$OUT/cargo-test.log" || ! grep -q '^test result: ok' "$OUT/cargo-test.log"; then
  echo "unit tests failed"; exit 1
fi
# No module of a crate imports another that imports it back (docs/architecture.md).
python3 tools/module-cycles.py

# tempest's compute API tests that need no guest (flavors, key pairs, quotas, limits, zones,
# hypervisors, services, aggregates, usage, os-hosts, server list filters)...
COMPUTE_API='^tempest\.api\.compute\.(test_versions|flavors|keypairs|admin\.test_flavors|admin\.test_keypairs|test_quotas|limits|admin\.test_quotas|servers\.test_availability_zone|admin\.test_availability_zone|admin\.test_hypervisor|admin\.test_services|admin\.test_aggregates|admin\.test_simple_tenant_usage|admin\.test_hosts|servers\.test_list_server_filters)|^tempest\.serial_tests\.(api\.compute\.admin\.test_aggregates|scenario\.test_aggregates_basic_ops)'
# ...and the ones that boot guests (servers and their actions, images made from servers, the
# security group and floating IP proxies): on SQLite only, as the QEMU e2e tests.
COMPUTE_SERVERS='^tempest\.api\.compute\.(servers\.|images\.|security_groups\.|floating_ips\.|admin\.test_migrations)'

run_e2e() { # $1 = label, $2 = tempest compute regex, then extra pytest arguments; HANEUL_TEST_PG set means PostgreSQL, else SQLite
  local label=$1 compute_regex=$2
  shift 2
  stage "e2e $label: pytest (openstack CLI, RBAC, bad input, restart)"
  local rc
  set +e
  # Two workers, one test file each at a time: most of the time goes to the CLI's start-up
  # and to guests booting under TCG, one core each.
  HANEUL_BIN=$BIN python -m pytest -q -p no:cacheprovider -rfE -n 2 --dist loadfile \
    --junitxml="$OUT/e2e-$label.xml" "$@" tests/e2e > "$OUT/e2e-$label.log" 2>&1
  rc=$?
  set -e
  tail -25 "$OUT/e2e-$label.log"
  if [ "$rc" -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi
  [ "$rc" -eq 0 ] || { echo "e2e $label failed"; exit 1; }

  stage "e2e $label: tempest identity, image and network"
  NEUTRON_AVAILABLE=true HANEUL_BIN=$BIN python tests/tempest/with_server.py tests/tempest/run.sh \
    '^tempest\.api\.(identity|image|network)' "$OUT/tempest-$label"
  cat tests/tempest/identity-pass.txt tests/tempest/image-pass.txt tests/tempest/network-pass.txt > "$OUT/tempest-$label/expected.txt"
  python tests/tempest/check.py "$OUT/tempest-$label/expected.txt" "$OUT/tempest-$label/results.json"

  [ -n "$compute_regex" ] || return 0
  stage "e2e $label: tempest compute"
  # Three at a time: most of the time is waiting for guests (TCG) and polling.
  # With the network service: each test's credentials get a network, subnet and router;
  # guests boot on them with DHCP and metadata.
  CONCURRENCY=3 FEATURE_RESIZE=true FEATURE_SUSPEND=true FEATURE_RESCUE=true FEATURE_SNAPSHOT=true FEATURE_VNC=true \
    NOVA_AVAILABLE=true NEUTRON_AVAILABLE=true HANEUL_BIN=$BIN python tests/tempest/with_server.py tests/tempest/run.sh \
    "$compute_regex" "$OUT/tempest-compute-$label"
  cat tests/tempest/compute-pass.txt tests/tempest/compute-servers-pass.txt > "$OUT/tempest-compute-$label/expected.txt"
  python tests/tempest/check.py "$OUT/tempest-compute-$label/expected.txt" "$OUT/tempest-compute-$label/results.json"
}

run_e2e sqlite "$COMPUTE_API|$COMPUTE_SERVERS"

stage "e2e sqlite: tempest compute, logged in to the guests"
# The tests that check inside their guests over SSH (hostname, vCPUs, interfaces plugged in
# and out): tempest and the cloud both run in the cloud's host namespace, where the floating
# IPs answer.
VALIDATED='^tempest\.api\.compute\.servers\.(test_create_server\.ServersTestJSON\.|test_attach_interfaces\.)'
IN_NETNS=true VALIDATION=true CONCURRENCY=2 NOVA_AVAILABLE=true NEUTRON_AVAILABLE=true HANEUL_BIN=$BIN \
  python tests/tempest/with_server.py tests/tempest/run.sh "$VALIDATED" "$OUT/tempest-validation"
python tests/tempest/check.py tests/tempest/compute-validation-pass.txt "$OUT/tempest-validation/results.json"

stage "start PostgreSQL"
# The server's own directory, outside $OUT (mktemp's 0700 keeps the postgres user out); a
# failed start stops the run rather than leaving the variable empty (the suite would then
# run on SQLite again and call it PostgreSQL).
PGDIR=$(mktemp -d /tmp/haneul-pg.XXXXXX)
chmod 0755 "$PGDIR"
HANEUL_TEST_PG=$(tests/pg.sh start "$PGDIR/pg") || { echo "PostgreSQL did not start"; exit 1; }
[ -n "$HANEUL_TEST_PG" ] || { echo "PostgreSQL did not start"; exit 1; }
export HANEUL_TEST_PG
echo "PostgreSQL on $HANEUL_TEST_PG"
trap 'tests/pg.sh stop "$PGDIR/pg" || true; rm -rf "$PGDIR"; summary' EXIT
# The QEMU server tests (about half of the pytest time) and the data plane's run once, on SQLite: what they add
# over the API tests is the host side, not the database; servers, placement, quotas and
# groups are still exercised on PostgreSQL by test_compute_api, test_placement and tempest.
# tempest compute runs once, on SQLite (PostgreSQL keeps the compute API e2e tests, and the
# builds killed at each step: their workflows are rows in the database too).
run_e2e postgres "" --ignore=tests/e2e/test_servers.py --ignore=tests/e2e/test_server_lifecycle.py --ignore=tests/e2e/test_guest_image.py \
  --ignore=tests/e2e/test_dataplane.py
