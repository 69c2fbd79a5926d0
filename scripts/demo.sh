#!/usr/bin/env bash
# The main job, end to end, on a fresh machine: installs and starts a private OpenLDAP slapd
# and a real SCIM 2.0 server on loopback, loads the sample people (config/sample/people.ldif),
# prints the dry-run plan, syncs, changes the directory (a promotion, a leaver, a disabled
# account), plans and syncs again, and shows the journal. Stops both servers on exit.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
work=${IDSYNC_DEMO_DIR:-$repo/.testbed/demo}

scripts/testbed.sh install
echo "== building idsync" >&2
cargo build --quiet --locked
idsync=$repo/target/debug/idsync

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ldap_port=$(free_port)
scim_port=$(free_port)

stop() {
  scripts/testbed.sh slapd-stop "$work/slapd" || true
  scripts/testbed.sh scim-stop "$work/scim" || true
}
scripts/testbed.sh slapd-stop "$work/slapd" 2>/dev/null || true
scripts/testbed.sh scim-stop "$work/scim" 2>/dev/null || true
rm -rf "$work"
mkdir -p "$work"
trap stop EXIT

scripts/testbed.sh slapd-start "$work/slapd" "$ldap_port" config/sample/people.ldif
scripts/testbed.sh scim-start "$work/scim" "$scim_port" demo-token
umask 077
printf 'idsync-secret\n' >"$work/ldap.secret"
printf 'demo-token\n' >"$work/scim.token"
sed -e "s|@LDAP_URL@|ldap://127.0.0.1:$ldap_port|" \
    -e "s|@SCIM_URL@|http://127.0.0.1:$scim_port/v2|" \
    -e "s|@STATE_DIR@|$work/state|" \
    config/sample/demo.yaml >"$work/idsync.yaml"

run() { echo; echo "\$ idsync $*"; "$idsync" --config "$work/idsync.yaml" "$@"; }

run check --connect
run plan
run sync
echo; echo "== directory changes: Ada promoted, Alan leaves, Grace disabled (both leave the research group), Linus joins research"
ldapmodify -x -H "ldap://127.0.0.1:$ldap_port" -D cn=admin,dc=example,dc=org -w admin-secret >/dev/null <<'LDIF'
dn: uid=ada,ou=people,dc=example,dc=org
changetype: modify
replace: title
title: Chief Scientist

dn: uid=alan,ou=people,dc=example,dc=org
changetype: delete

dn: uid=grace,ou=people,dc=example,dc=org
changetype: modify
replace: employeeType
employeeType: disabled

dn: cn=research,ou=groups,dc=example,dc=org
changetype: modify
add: member
member: uid=linus,ou=people,dc=example,dc=org
LDIF
run plan --format markdown
run sync
run runs
run show last
echo
echo "== demo done: config, journal and server logs are in $work"
