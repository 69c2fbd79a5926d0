#!/usr/bin/env bash
# The real servers idsync's tests and demo run against, as private loopback processes:
# OpenLDAP slapd (Debian package, syncprov overlay) and scim2-server (PyPI, in a venv).
#
#   scripts/testbed.sh install                    install slapd, ldap-utils, scim2-server,
#                                                 Canaille, chromium + chromium-driver (the
#                                                 console's browser tests) and systemd-analyze
#   scripts/testbed.sh slapd-start DIR PORT [LDIF...]   new slapd in DIR, LDIFs loaded offline
#                      (SLAPD_SYNC_LIMITS overrides the sync account's `limits`;
#                      SLAPD_TLS_DIR with ca.pem, server.pem, server.key enables StartTLS)
#   scripts/testbed.sh tls-certs DIR              a test CA and a server cert for 127.0.0.1
#                      (TLS_SAN replaces its names, e.g. DNS:other.example for a wrong host)
#   scripts/testbed.sh slapd-stop DIR
#   scripts/testbed.sh scim-start DIR PORT TOKEN  scim2-server on 127.0.0.1:PORT (base URL /v2)
#   scripts/testbed.sh scim-stop DIR
#   scripts/testbed.sh canaille-start DIR PORT TOKEN [OIDC_SPEC_JSON]   Canaille (PyPI), an identity server whose
#                      SCIM 2.0 API (base URL /scim/v2) is written apart from scim2-server: the
#                      second, stricter app (no filter, read-only photos, required name parts,
#                      members listed by userName, `$ref` required on members); with
#                      OIDC_SPEC_JSON also the console's OpenID Connect provider (see
#                      scripts/testbed/canaille_serve.py)
#   scripts/testbed.sh canaille-stop DIR
#   scripts/testbed.sh samba-start DIR [OWNER_PID]   a new Samba AD DC (domain EXAMPLE.TEST,
#                      Administrator / "$AD_ADMIN_PW") provisioned in DIR, serving LDAP on
#                      127.0.0.1:389 and LDAPS on 127.0.0.1:636 with a test CA (DIR/tls/ca.pem);
#                      stopped when OWNER_PID exits, if given. Its ports are fixed: one at a time.
#   scripts/testbed.sh samba-stop DIR
#   scripts/testbed.sh ds389-start DIR PORT [LDIF...]   a new 389 Directory Server (Debian
#                      389-ds-base) in DIR/prefix on 127.0.0.1:PORT, Directory Manager /
#                      "admin-secret", with content sync (RFC 4533), the retro changelog and
#                      entryUUID; run again on the same DIR, it restarts the instance
#   scripts/testbed.sh ds389-stop DIR
#
# Directory: suffix dc=example,dc=org, admin cn=admin,dc=example,dc=org / "admin-secret",
# read-only sync account cn=idsync,ou=services,dc=example,dc=org / "idsync-secret", and
# cn=noread,ou=services,dc=example,dc=org / "noread-secret" that may bind but read nothing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${IDSYNC_TESTBED_VENV:-$here/.testbed/venv}
SCIM_VERSION=0.8.3
canaille_venv=${IDSYNC_TESTBED_CANAILLE_VENV:-$here/.testbed/canaille}
# Canaille 0.3.6 dumps with the `attributes=` keyword that scim2-models dropped after 0.9.
CANAILLE_PINS=("canaille[scim,oidc]==0.3.6" "scim2-models==0.9.0")
AD_ADMIN_PW='Adm1n-Secret!'

die() { echo "testbed: $*" >&2; exit 1; }

install() {
  if ! command -v slapd >/dev/null 2>&1 && [ ! -x /usr/sbin/slapd ] || ! command -v ldapmodify >/dev/null 2>&1; then
    echo "testbed: installing slapd and ldap-utils (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq slapd ldap-utils >/dev/null
  fi
  if ! command -v samba-tool >/dev/null 2>&1 || [ ! -x /usr/sbin/samba ]; then
    echo "testbed: installing samba (apt-get), for the Active Directory tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq samba samba-common-bin ldb-tools >/dev/null
  fi
  if ! command -v dscreate >/dev/null 2>&1 || [ ! -x /usr/sbin/ns-slapd ]; then
    echo "testbed: installing 389-ds-base (apt-get), for the 389 Directory Server tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq 389-ds-base >/dev/null
  fi
  if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "testbed: installing systemd (for systemd-analyze security on our units)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
  fi
  if ! command -v chromedriver >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ]; then
    echo "testbed: installing chromium and chromium-driver (apt-get), for the console's browser tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  if ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
    echo "testbed: installing dpkg-dev (the package's Depends are computed by dpkg-shlibdeps)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >/dev/null
  fi
  if ! command -v man >/dev/null 2>&1; then
    echo "testbed: installing man-db (the package test looks its man pages up)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq man-db >/dev/null
  fi
  if [ ! -x "$venv/bin/scim2-server" ] || ! "$venv/bin/pip" show scim2-server 2>/dev/null | grep "^Version: $SCIM_VERSION$" >/dev/null; then
    echo "testbed: installing scim2-server $SCIM_VERSION into $venv (pip)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "scim2-server==$SCIM_VERSION"
  fi
  if ! "$canaille_venv/bin/pip" freeze 2>/dev/null | grep -qix "canaille==${CANAILLE_PINS[0]##*==}"; then
    echo "testbed: installing ${CANAILLE_PINS[*]} into $canaille_venv (pip)" >&2
    python3 -m venv "$canaille_venv"
    "$canaille_venv/bin/pip" install -q --disable-pip-version-check "${CANAILLE_PINS[@]}"
  fi
}

wait_port() { # PORT SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

slapd_start() {
  local dir=$1 port=$2; shift 2
  [ -n "$dir" ] && [ -n "$port" ] || die "usage: slapd-start DIR PORT [LDIF...]"
  mkdir -p "$dir/db"
  dir=$(cd "$dir" && pwd)
  local tls=""
  if [ -n "${SLAPD_TLS_DIR:-}" ]; then
    tls="TLSCACertificateFile $SLAPD_TLS_DIR/ca.pem
TLSCertificateFile $SLAPD_TLS_DIR/server.pem
TLSCertificateKeyFile $SLAPD_TLS_DIR/server.key"
  fi
  cat >"$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
$tls
pidfile $dir/slapd.pid
argsfile $dir/slapd.args

database mdb
maxsize 1073741824
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw admin-secret
directory $dir/db
dbnosync
index objectClass eq
index entryCSN,entryUUID eq
# Like Active Directory's MaxPageSize: a search that does not page is cut at 500 entries;
# one that pages (RFC 2696) reads everything.
limits dn.exact="cn=idsync,ou=services,dc=example,dc=org" ${SLAPD_SYNC_LIMITS:-size.soft=500 size.hard=500 size.pr=500 size.prtotal=unlimited}
access to attrs=userPassword by anonymous auth by * none
# noread sees the people container but none of the people: "0 entries, success".
access to dn.base="ou=people,dc=example,dc=org" by dn.exact="cn=noread,ou=services,dc=example,dc=org" read by dn.exact="cn=idsync,ou=services,dc=example,dc=org" read by * none
access to * by dn.exact="cn=idsync,ou=services,dc=example,dc=org" read by * none
overlay syncprov
syncprov-checkpoint 100 10
syncprov-sessionlog 100000
CONF
  slaptest -Q -u -f "$dir/slapd.conf" || die "slapd.conf in $dir does not validate"
  if [ ! -e "$dir/db/data.mdb" ]; then
    cat >"$dir/base.ldif" <<'LDIF'
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: ou=alumni,dc=example,dc=org
objectClass: organizationalUnit
ou: alumni

dn: cn=idsync,ou=services,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: idsync
userPassword: idsync-secret

dn: cn=noread,ou=services,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: noread
userPassword: noread-secret
LDIF
    slapadd -q -w -f "$dir/slapd.conf" -l "$dir/base.ldif" || die "loading base.ldif failed"
    local ldif
    for ldif in "$@"; do
      slapadd -q -w -f "$dir/slapd.conf" -l "$ldif" || die "loading $ldif failed"
    done
  fi
  local slapd_bin
  slapd_bin=$(command -v slapd || echo /usr/sbin/slapd)
  "$slapd_bin" -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$port/" -s none -n "idsync-test-slapd" || die "slapd did not start"
  wait_port "$port" 15 || die "slapd did not listen on 127.0.0.1:$port"
}

slapd_stop() {
  local dir=$1 pid i
  [ -f "$dir/slapd.pid" ] || return 0
  pid=$(cat "$dir/slapd.pid")
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/slapd.pid"
}

# Starts CMD... in the background, logging to DIR/NAME.log (pid in DIR/NAME.pid), and waits
# SECS for it to listen on PORT.
start_server() { # NAME DIR PORT SECS LABEL CMD...
  local name=$1 dir=$2 port=$3 secs=$4 label=$5
  shift 5
  mkdir -p "$dir"
  # Started from a non-interactive shell, Python would inherit SIGINT ignored; setsid +
  # SIGTERM on stop is enough since the servers keep nothing we need on disk.
  setsid "$@" >"$dir/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
  wait_port "$port" "$secs" || { cat "$dir/$name.log" >&2; die "$label did not listen on 127.0.0.1:$port"; }
}

scim_start() {
  local dir=$1 port=$2 token=$3
  [ -n "$token" ] || die "usage: scim-start DIR PORT TOKEN"
  [ -x "$venv/bin/scim2-server" ] || die "scim2-server is not installed; run: scripts/testbed.sh install"
  start_server scim "$dir" "$port" 30 scim2-server \
    "$venv/bin/scim2-server" --hostname 127.0.0.1 --port "$port" --bearer-token "$token"
}

scim_stop() { # DIR [NAME]
  local dir=$1 name=${2:-scim} pid i
  [ -f "$dir/$name.pid" ] || return 0
  pid=$(cat "$dir/$name.pid")
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/$name.pid"
}

canaille_start() {
  local dir=$1 port=$2 token=$3 oidc=${4:-}
  [ -n "$token" ] || die "usage: canaille-start DIR PORT TOKEN [OIDC_SPEC_JSON]"
  [ -x "$canaille_venv/bin/python" ] || die "Canaille is not installed; run: scripts/testbed.sh install"
  start_server canaille "$dir" "$port" 60 Canaille \
    "$canaille_venv/bin/python" "$here/scripts/testbed/canaille_serve.py" "$port" "$token" ${oidc:+"$oidc"}
}

tls_certs() {
  local dir=$1
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=idsync test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/server.key" \
    -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "${TLS_SAN:-IP:127.0.0.1,DNS:localhost}" >"$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
  chmod 644 "$dir/server.key"
}

samba_stop() {
  local dir=$1
  [ -f "$dir/samba.pid" ] || return 0
  local pid; pid=$(cat "$dir/samba.pid")
  kill "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/samba.pid"
}

samba_start() {
  local dir=$1 owner=${2:-}
  [ -n "$dir" ] || die "usage: samba-start DIR [OWNER_PID]"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  samba_stop "$dir"
  if (exec 3<>/dev/tcp/127.0.0.1/636) 2>/dev/null; then
    die "something already listens on 127.0.0.1:636 (another Samba DC?); stop it first"
  fi
  rm -rf "$dir/dc" "$dir/tls"
  TLS_SAN="IP:127.0.0.1,DNS:localhost,DNS:dc1.example.test" tls_certs "$dir/tls"
  chmod 600 "$dir/tls/server.key" # Samba refuses a key others may read.
  samba-tool domain provision --realm=EXAMPLE.TEST --domain=EXAMPLE --server-role=dc \
    --dns-backend=NONE --adminpass="$AD_ADMIN_PW" --targetdir="$dir/dc" --host-name=dc1 \
    --option="interfaces=lo" --option="bind interfaces only=yes" \
    --option="server services=ldap" --option="log file=$dir/samba.log" \
    --option="pid directory=$dir/dc" --option="tls enabled=yes" \
    --option="tls keyfile=$dir/tls/server.key" --option="tls certfile=$dir/tls/server.pem" \
    --option="tls cafile=$dir/tls/ca.pem" >"$dir/provision.log" 2>&1 ||
    { tail -20 "$dir/provision.log" >&2; die "samba-tool domain provision failed (log: $dir/provision.log)"; }
  nohup samba -s "$dir/dc/etc/smb.conf" --foreground --no-process-group -M single \
    >"$dir/samba.out" 2>&1 </dev/null &
  echo $! >"$dir/samba.pid"
  if [ -n "$owner" ]; then
    # Stops the DC when the test process that owns it is gone, however it ended.
    nohup bash -c "while kill -0 $owner 2>/dev/null; do sleep 1; done; kill \$(cat '$dir/samba.pid' 2>/dev/null) 2>/dev/null" \
      >/dev/null 2>&1 </dev/null &
  fi
  wait_port 636 60 || { tail -20 "$dir/samba.out" >&2; die "samba did not start listening on 127.0.0.1:636"; }
}

# 389 Directory Server, as a private instance: `dscreate from-file` under a prefix in DIR
# (Debian's binaries, schema and plugins; config, db, logs and run files in DIR/prefix),
# run as root by ns-slapd itself (no systemd), listening on 127.0.0.1:PORT only, with the
# Retro Changelog (nsuniqueid:targetUniqueId), Content Synchronization and entryUUID
# plugins on, the testbed's OUs, the sync account (read access to the operational
# attributes idsync asks for, no size limit) and the LDIFs loaded.
DS_NAME=idsync
DS_MANAGER="cn=Directory Manager"

ds389_paths() { # DIR -> prefix, config dir, pid file
  ds_prefix=$1/prefix
  ds_config=$ds_prefix/etc/dirsrv/slapd-$DS_NAME
  ds_pid=$ds_prefix/run/dirsrv/slapd-$DS_NAME.pid
}

ds389_run() { # DIR PORT
  ds389_paths "$1"
  /usr/sbin/ns-slapd -D "$ds_config" -i "$ds_pid" >"$1/ns-slapd.out" 2>&1 ||
    { tail -20 "$ds_prefix/var/log/dirsrv/slapd-$DS_NAME/errors" >&2; die "ns-slapd did not start (errors log above)"; }
  wait_port "$2" 30 || { tail -20 "$ds_prefix/var/log/dirsrv/slapd-$DS_NAME/errors" >&2; die "389-ds did not listen on 127.0.0.1:$2"; }
}

ds389_start() {
  local dir=$1 port=$2; shift 2
  [ -n "$dir" ] && [ -n "$port" ] || die "usage: ds389-start DIR PORT [LDIF...]"
  command -v dscreate >/dev/null 2>&1 || die "dscreate not found: run '$0 install' (Debian 389-ds-base)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  ds389_paths "$dir"
  if [ -f "$ds_config/dse.ldif" ]; then # a restart on the same data
    ds389_run "$dir" "$port"
    return
  fi
  mkdir -p "$ds_prefix/share/dirsrv/inf" "$ds_prefix/etc/dirsrv"
  cp -r /etc/dirsrv/config /etc/dirsrv/schema "$ds_prefix/etc/dirsrv/"
  local p=$ds_prefix
  sed -e "s#^with_systemd = .*#with_systemd = 0#" \
    -e "s#^\(sysconf_dir\|initconfig_dir\|config_dir\|schema_dir\|cert_dir\) = /etc#\1 = $p/etc#" \
    -e "s#^\(local_state_dir\) = /var#\1 = $p/var#" -e "s#= /var/#= $p/var/#" \
    -e "s#^\(run_dir\|ldapi\|pid_file\|lock_dir\) = /run#\1 = $p/run#" \
    -e "s#^inst_dir = .*#inst_dir = $p/lib/dirsrv/slapd-{instance_name}#" \
    -e "s#^tmpfiles_d = .*#tmpfiles_d = $p/tmpfiles.d#" \
    -e "s#^db_home_dir = /dev/shm#db_home_dir = $p/shm#" \
    -e "s#^user = .*#user = root#" -e "s#^group = .*#group = root#" \
    /usr/share/dirsrv/inf/defaults.inf >"$p/share/dirsrv/inf/defaults.inf"
  cat >"$dir/instance.inf" <<INF
[general]
full_machine_name = localhost
strict_host_checking = False
start = True
[slapd]
instance_name = $DS_NAME
port = $port
secure_port = $((port + 1))
root_password = admin-secret
self_sign_cert = False
user = root
group = root
[backend-userroot]
suffix = dc=example,dc=org
create_suffix_entry = True
INF
  (cd "$dir" && PREFIX="$p" dscreate from-file "$dir/instance.inf") >"$dir/dscreate.log" 2>&1 ||
    { tail -20 "$dir/dscreate.log" >&2; die "dscreate failed (log: $dir/dscreate.log)"; }
  local admin=(-x -H "ldap://127.0.0.1:$port" -D "$DS_MANAGER" -w admin-secret)
  ldapmodify "${admin[@]}" >/dev/null <<'LDIF' || die "389-ds: configuring the plugins failed"
dn: cn=config
changetype: modify
replace: nsslapd-listenhost
nsslapd-listenhost: 127.0.0.1

dn: cn=Retro Changelog Plugin,cn=plugins,cn=config
changetype: modify
replace: nsslapd-pluginEnabled
nsslapd-pluginEnabled: on
-
replace: nsslapd-attribute
nsslapd-attribute: nsuniqueid:targetUniqueId

dn: cn=Content Synchronization,cn=plugins,cn=config
changetype: modify
replace: nsslapd-pluginEnabled
nsslapd-pluginEnabled: on

dn: cn=entryuuid,cn=plugins,cn=config
changetype: modify
replace: nsslapd-pluginEnabled
nsslapd-pluginEnabled: on
LDIF
  ds389_stop "$dir"
  ds389_run "$dir" "$port"
  ldapadd "${admin[@]}" >/dev/null <<'LDIF' || die "389-ds: loading the base entries failed"
dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=alumni,dc=example,dc=org
objectClass: organizationalUnit
ou: alumni

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: cn=idsync,ou=services,dc=example,dc=org
objectClass: person
cn: idsync
sn: idsync
userPassword: idsync-secret
nsSizeLimit: -1
nsLookThroughLimit: -1

dn: cn=noread,ou=services,dc=example,dc=org
objectClass: person
cn: noread
sn: noread
userPassword: noread-secret
LDIF
  ldapmodify "${admin[@]}" >/dev/null <<'LDIF' || die "389-ds: the sync account's ACI failed"
dn: dc=example,dc=org
changetype: modify
add: aci
aci: (targetattr="*||nsAccountLock||entryUUID||nsUniqueId||createTimestamp||modifyTimestamp")(version 3.0; acl "idsync reads"; allow (read,search,compare) userdn="ldap:///cn=idsync,ou=services,dc=example,dc=org";)
LDIF
  local f
  for f in "$@"; do
    ldapadd "${admin[@]}" -f "$f" >/dev/null || die "389-ds: loading $f failed"
  done
}

ds389_stop() {
  local dir=$1 pid i
  ds389_paths "$dir"
  [ -f "$ds_pid" ] || return 0
  pid=$(cat "$ds_pid")
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$ds_pid"
}

cmd=${1:-}; shift || true
case "$cmd" in
  install) install ;;
  slapd-start) slapd_start "$@" ;;
  slapd-stop) slapd_stop "$@" ;;
  scim-start) scim_start "$@" ;;
  scim-stop) scim_stop "$@" ;;
  canaille-start) canaille_start "$@" ;;
  canaille-stop) scim_stop "$1" canaille ;;
  tls-certs) tls_certs "$@" ;;
  samba-start) samba_start "$@" ;;
  samba-stop) samba_stop "$@" ;;
  ds389-start) ds389_start "$@" ;;
  ds389-stop) ds389_stop "$@" ;;
  *) die "unknown command '$cmd'; see the header of $0" ;;
esac
