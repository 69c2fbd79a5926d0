#!/usr/bin/env bash
# The idsync benchmark: one machine, one run, a table of ratios.
#
#   bench/run.sh                 100,000 people (BENCH_PEOPLE), 10,000 for provisioning
#   BENCH_PEOPLE=10000 bench/run.sh
#   BENCH_SKIP_APPS=1 leaves out the one-app vs three-apps rows (four more full plans)
#
# Generates N synthetic people (deterministic seed; ~10% with a small jpegPhoto), loads them
# into a private slapd with slapadd (the sync account has no size limit, as syncrepl
# consumers do), lets idsync bring a real scim2-server to the steady state, then measures:
#   1. baseline: ldapsearch paged dump, and a paged SCIM list of all Users;
#   2. `idsync plan` with no changes (full LDAP read): wall time, peak RSS, requests per side;
#   3. 1% churn (a third each modified / deleted / added): `plan` and `sync`, with a full
#      read and with `incremental: syncrepl` (the read's cost is the run's read_ms);
#   4. photo bytes moved by a no-change sync;
#   5. initial provisioning of BENCH_PROVISION people into an empty app: writes/s at the
#      configured concurrency, and with rate_limit 50/s;
#   6. the quiet cycle, incremental on both sides (syncrepl + the accounts the journal
#      remembers): wall time and CPU against a full plan's, requests to the app; the 1%
#      churn sync against a full plan plus its writes at the measured write rate; a full
#      reconciliation (`sync --full`) against max(raw directory read, raw app list).
# Ratios (idsync / baseline) are the headline; absolute seconds depend on the machine.
# BENCH_HEAPTRACK=1 also runs the no-change plan under heaptrack (where the memory goes:
# .testbed/bench/plan.heaptrack.zst, summary at the end; timings are not affected).
# Everything lives in .testbed/bench (servers stopped on exit). Needs root (apt-get, pip),
# like the test suite.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
N=${BENCH_PEOPLE:-100000}
P=${BENCH_PROVISION:-10000}
work=${BENCH_DIR:-$repo/.testbed/bench}
venv=${IDSYNC_TESTBED_VENV:-$repo/.testbed/venv}

scripts/testbed.sh install
command -v /usr/bin/time >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
if [ -n "${BENCH_HEAPTRACK:-}" ] && ! command -v heaptrack >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq heaptrack >/dev/null
fi
echo "== building idsync (release)" >&2
cargo build --release --quiet --locked
idsync=$repo/target/release/idsync

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
stop() {
  scripts/testbed.sh slapd-stop "$work/slapd" || true
  scripts/testbed.sh scim-stop "$work/scim" || true
  scripts/testbed.sh scim-stop "$work/scim-empty" || true
}
stop 2>/dev/null
rm -rf "$work"
mkdir -p "$work"
trap stop EXIT

echo "== generating $N people" >&2
python3 bench/people.py "$N" >"$work/people.ldif"
ldap_port=$(free_port)
SLAPD_SYNC_LIMITS="size=unlimited" scripts/testbed.sh slapd-start "$work/slapd" "$ldap_port" "$work/people.ldif"
scim_port=$(free_port)
scripts/testbed.sh scim-start "$work/scim" "$scim_port" bench-token
umask 077
printf 'idsync-secret\n' >"$work/ldap.secret"
printf 'bench-token\n' >"$work/scim.token"

config() { # NAME SCIM_PORT INCREMENTAL [TARGET_EXTRA]
  cat >"$work/$1.yaml" <<YAML
state_dir: $work/state-${STATE:-$1}
source:
  kind: ldap
  url: ldap://127.0.0.1:$ldap_port
  bind_dn: cn=idsync,ou=services,dc=example,dc=org
  bind_password_file: ldap.secret
  base_dn: ou=people,dc=example,dc=org
  filter: (objectClass=inetOrgPerson)
  disabled: "(employeeType=disabled)"
  page_size: 1000
  photo: jpegPhoto
  incremental: $3
target:
  kind: scim
  url: http://127.0.0.1:$2/v2
  token_file: scim.token
  concurrency: 8
  page_size: 1000
${4:-}
match: { target: userName, source: "{mail}" }
mapping:
  userName: "{mail}"
  name.givenName: "{givenName}"
  name.familyName: "{sn}"
  displayName: "{cn}"
  title: "{title}"
  emails[type eq "work"].value: "{mail}"
  phoneNumbers[type eq "work"].value: "{telephoneNumber}"
safety: { min_source_ratio: 0.5, max_deprovisions: "5%" }
YAML
}
# One journal for both: the syncrepl config's first sync then only takes a cookie.
STATE=steady config full "$scim_port" none
STATE=steady config syncrepl "$scim_port" syncrepl

now() { date +%s.%N; }
# Runs a command under /usr/bin/time; sets SECS, RSS_MB and CPU (user + system seconds).
measure() {
  local t0 t1
  t0=$(now)
  /usr/bin/time -f '%M %U %S' -o "$work/rss" "$@" >"$work/last.out" 2>"$work/last.err" || {
    cat "$work/last.err" >&2; return 1; }
  t1=$(now)
  SECS=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
  read -r RSS_MB CPU < <(python3 -c "m, u, s = open('$work/rss').read().split()[-3:]; print(f'{int(m) / 1024:.0f} {float(u) + float(s):.2f}')")
}
scim_gets() { grep -c '"GET ' "$work/scim/scim.log" || true; }
scim_all() { grep -cE '"(GET|POST|PUT|PATCH|DELETE) ' "$work/scim/scim.log" || true; }
scim_writes() { grep -cE '"(POST|PUT|PATCH|DELETE) ' "$work/scim/scim.log" || true; }
source_ms() { # CONFIG: how long the last run's directory read took
  "$idsync" --config "$work/$1.yaml" runs --limit 1 --format json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["counts"].get("source_ms", 0))'
}

echo "== steady state: idsync sync of $N people into the empty app" >&2
measure "$idsync" --config "$work/full.yaml" sync
steady_secs=$SECS
# What journaling cost that run (every action planned, then its result and link, each in
# its own transaction): idsync's journal_ms against the rest of the run.
read -r steady_actions steady_journal_ms < <("$idsync" --config "$work/full.yaml" runs --limit 1 --format json |
  python3 -c 'import json,sys; c=json.load(sys.stdin)[0]["counts"]; print(c.get("applied", 0), c.get("journal_ms", 0))')
"$idsync" --config "$work/syncrepl.yaml" sync >/dev/null   # takes its first cookie

echo "== 1. baseline reads" >&2
measure ldapsearch -x -LLL -H "ldap://127.0.0.1:$ldap_port" -D cn=idsync,ou=services,dc=example,dc=org \
  -w idsync-secret -b ou=people,dc=example,dc=org -E pr=1000/noprompt '(objectClass=inetOrgPerson)' \
  givenName sn cn title mail telephoneNumber employeeType entryUUID jpegPhoto
ldap_secs=$SECS
measure python3 bench/scim_list.py "http://127.0.0.1:$scim_port/v2" bench-token
scim_secs=$SECS
scim_list_users=$(cat "$work/last.out")
base_secs=$(python3 -c "print(f'{$ldap_secs + $scim_secs:.2f}')")

echo "== 2. idsync plan, no changes" >&2
g0=$(scim_gets)
measure "$idsync" --config "$work/full.yaml" plan
plan_secs=$SECS plan_rss=$RSS_MB plan_cpu=$CPU
plan_gets=$(( $(scim_gets) - g0 ))
plan_pending=$(head -1 "$work/last.out")
if [ -n "${BENCH_HEAPTRACK:-}" ]; then
  echo "== 2b. the same plan under heaptrack" >&2
  heaptrack -o "$work/plan.heaptrack" "$idsync" --config "$work/full.yaml" plan >/dev/null 2>&1
fi

echo "== 2c. one app vs three apps from one directory read" >&2
# The same app three times over (a dry run writes nothing), each in a fresh state: every
# account is planned as adopted, by each app. What an extra app costs: its accounts and
# its plan; the directory is read once whatever the number of apps.
apps_config() { # NAME COUNT
  awk -v n="$2" '
    /^target:/ { intarget = 1; next }
    intarget && /^[^ ]/ { intarget = 0 }
    intarget { t = t "    " $0 "\n"; next }
    { print }
    END { print "apps:"; for (i = 1; i <= n; i++) printf "  app%d:\n    target:\n%s", i, t }
  ' "$work/full.yaml" | sed "s|^state_dir: .*|state_dir: $work/state-$1|" >"$work/$1.yaml"
}
if [ -z "${BENCH_SKIP_APPS:-}" ]; then
  apps_config apps1 1
  apps_config apps3 3
  measure "$idsync" --config "$work/apps1.yaml" plan
  apps1_secs=$SECS apps1_rss=$RSS_MB apps1_read_ms=$(source_ms apps1)
  measure "$idsync" --config "$work/apps3.yaml" plan
  apps3_secs=$SECS apps3_rss=$RSS_MB apps3_read_ms=$(source_ms apps3)
fi

echo "== 4. no-change sync: photo bytes moved" >&2
w0=$(scim_writes)
"$idsync" --config "$work/full.yaml" sync >/dev/null
quiet_writes=$(( $(scim_writes) - w0 ))
full_read_ms=$(source_ms full)
quiet_photo_bytes=$("$idsync" --config "$work/full.yaml" show last --format json |
  python3 -c 'import json,sys; print(sum(1 for a in json.load(sys.stdin)["actions"] if "photo" in a["after"]))')

echo "== 3. 1% churn" >&2
# The cycle before the churn runs with the same configuration as the churn sync, as a
# daemon's would: the churn sync's plan then looks only at what changed (`plan::Focus`).
"$idsync" --config "$work/syncrepl.yaml" sync >/dev/null
python3 bench/churn.py "$N" >"$work/churn.ldif"
ldapmodify -x -H "ldap://127.0.0.1:$ldap_port" -D cn=admin,dc=example,dc=org -w admin-secret \
  -f "$work/churn.ldif" >/dev/null
measure "$idsync" --config "$work/full.yaml" plan
churn_plan_secs=$SECS churn_plan_rss=$RSS_MB
measure "$idsync" --config "$work/syncrepl.yaml" plan
churn_plan_inc_secs=$SECS churn_plan_inc_rss=$RSS_MB
w0=$(scim_writes)
measure "$idsync" --config "$work/syncrepl.yaml" sync
churn_sync_inc_secs=$SECS churn_sync_inc_rss=$RSS_MB
churn_writes=$(( $(scim_writes) - w0 ))
churn_read_ms=$(source_ms syncrepl)
churn_apply_ms=$("$idsync" --config "$work/syncrepl.yaml" runs --limit 1 --format json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["counts"].get("apply_ms", 0))')

echo "== 6. quiet cycle, incremental on both sides; full reconciliation" >&2
app_read() { # CONFIG: how the last run read the app
  "$idsync" --config "$work/$1.yaml" runs --limit 1 --format json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["counts"].get("app_read", ""))'
}
churn_read=$(app_read syncrepl)
# The cycle right after changes plans (against the remembered accounts: the last plan
# stood for people who have changed since); the next finds nothing changed on either side
# and makes no plan.
r0=$(scim_all)
measure "$idsync" --config "$work/syncrepl.yaml" sync
settle_secs=$SECS settle_rss=$RSS_MB settle_cpu=$CPU
settle_requests=$(( $(scim_all) - r0 ))
settle_read=$(app_read syncrepl)
r0=$(scim_all)
measure "$idsync" --config "$work/syncrepl.yaml" sync
quiet_secs=$SECS quiet_rss=$RSS_MB quiet_cpu=$CPU
quiet_requests=$(( $(scim_all) - r0 ))
quiet_read=$(app_read syncrepl)
# What the filter costs the app, asked by curl.
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
measure curl -sf -G -H "Authorization: Bearer bench-token" "http://127.0.0.1:$scim_port/v2/Users" \
  --data-urlencode "filter=meta.lastModified ge \"$since\""
filter_secs=$SECS
# What the quiet cycle asks an app that sorts (scim2-server does): a page newest first.
measure curl -sf -G -H "Authorization: Bearer bench-token" "http://127.0.0.1:$scim_port/v2/Users" \
  --data-urlencode "sortBy=meta.lastModified" --data-urlencode "sortOrder=descending" \
  --data-urlencode "startIndex=1" --data-urlencode "count=100"
sorted_secs=$SECS
measure "$idsync" --config "$work/full.yaml" sync --full
recon_secs=$SECS recon_rss=$RSS_MB
raw_max=$(python3 -c "print(max($ldap_secs, $scim_secs))")
# The churn sync's budget: 5% of a full plan, plus its writes at the rate measured while
# it wrote (apply_ms covers the writes and their read-backs).
churn_budget=$(python3 -c "print(f'{0.05 * $plan_secs + $churn_apply_ms / 1000:.2f}')")

echo "== 5. initial provisioning of $P people" >&2
provision() { # NAME TARGET_EXTRA -> writes/s, 429s
  local port
  port=$(free_port)
  scripts/testbed.sh scim-stop "$work/scim-empty" 2>/dev/null || true
  rm -rf "$work/scim-empty"
  scripts/testbed.sh scim-start "$work/scim-empty" "$port" bench-token
  config "$1" "$port" none "$2"
  sed -i "s|  filter: (objectClass=inetOrgPerson)|  filter: (\&(objectClass=inetOrgPerson)(departmentNumber=provision))|" "$work/$1.yaml"
  measure "$idsync" --config "$work/$1.yaml" sync
  local creates apply_ms
  # Every write counts against the limit: the creates and the photo uploads after them.
  creates=$(grep -cE '"(POST|PUT|PATCH|DELETE) ' "$work/scim-empty/scim.log" || true)
  apply_ms=$("$idsync" --config "$work/$1.yaml" runs --limit 1 --format json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["counts"].get("apply_ms", 1))')
  # The rate of the writing phase (reads and start-up excluded), and of the whole run.
  PROV_RATE=$(python3 -c "print(f'{$creates / ($apply_ms / 1000):.1f}')")
  PROV_WALL=$(python3 -c "print(f'{$creates / $SECS:.1f}')")
  PROV_429=$(grep -c '" 429 ' "$work/scim-empty/scim.log" || true)
  PROV_N=$creates
}
provision prov ""
prov_rate=$PROV_RATE prov_wall=$PROV_WALL prov_n=$PROV_N prov_429=$PROV_429
provision prov50 "  rate_limit: 50/s"
prov50_rate=$PROV_RATE prov50_wall=$PROV_WALL prov50_429=$PROV_429

apps_rows=
if [ -z "${BENCH_SKIP_APPS:-}" ]; then
  apps_extra=$(python3 -c "print(f'{100 * ($apps3_rss - $apps1_rss) / 2 / $apps1_rss:.0f}')")
  apps_rows="| plan, 3 apps from one read vs 1 app (fresh state, every account adopted by each app) | ${apps3_secs}s, peak RSS ${apps3_rss} MB | ${apps1_secs}s, peak RSS ${apps1_rss} MB | $(python3 -c "print(f'{$apps3_secs / $apps1_secs:.2f}x')") time; each extra app +${apps_extra}% of one app's RSS |
| directory read of that plan: 3 apps vs 1 app (idsync's source_ms; one read either way) | ${apps3_read_ms} ms | ${apps1_read_ms} ms | $(python3 -c "print(f'{$apps3_read_ms / $apps1_read_ms:.2f}x')") |
"
fi
ratio() { python3 -c "print(f'{$1 / $2:.2f}x')"; }
cat <<TABLE

idsync benchmark: $N people ($(nproc) cores, $(date -u +%Y-%m-%d)); steady state reached by one sync in ${steady_secs}s

| measure | idsync | baseline | ratio |
|---|---|---|---|
| read both sides (ldapsearch paged dump + SCIM paged list of $scim_list_users Users) | - | ${base_secs}s (${ldap_secs}s + ${scim_secs}s) | - |
| plan, no changes (full read) | ${plan_secs}s, peak RSS ${plan_rss} MB, SCIM GETs ${plan_gets}, LDAP pages $(( (N + 999) / 1000 )) | ${base_secs}s | $(ratio "$plan_secs" "$base_secs") |
| plan, 1% churn, full read | ${churn_plan_secs}s, peak RSS ${churn_plan_rss} MB | ${base_secs}s | $(ratio "$churn_plan_secs" "$base_secs") |
| plan, 1% churn, syncrepl read | ${churn_plan_inc_secs}s, peak RSS ${churn_plan_inc_rss} MB | ${base_secs}s | $(ratio "$churn_plan_inc_secs" "$base_secs") |
| sync, 1% churn, syncrepl read ($churn_writes writes) | ${churn_sync_inc_secs}s, peak RSS ${churn_sync_inc_rss} MB | ${base_secs}s | $(ratio "$churn_sync_inc_secs" "$base_secs") |
| directory read at 1% churn: syncrepl vs a full read (idsync's source_ms) | ${churn_read_ms} ms | ${full_read_ms} ms | $(ratio "$churn_read_ms" "$full_read_ms") |
${apps_rows}| no-change sync: writes / photo uploads (photo bytes moved) | $quiet_writes / $quiet_photo_bytes (0 bytes) | - | - |
| journaling in the steady-state sync ($steady_actions actions applied, one transaction each): journal time vs the rest of the run | $(python3 -c "print(f'{$steady_journal_ms / 1000:.2f}')")s | $(python3 -c "print(f'{$steady_secs - $steady_journal_ms / 1000:.2f}')")s | $(python3 -c "print(f'+{100 * $steady_journal_ms / 1000 / ($steady_secs - $steady_journal_ms / 1000):.1f}%')") |
| initial provisioning ($prov_n writes: creates + photo uploads), concurrency 8: writes/s while writing (whole run) | ${prov_rate}/s (${prov_wall}/s), ${prov_429} x 429 | - | - |
| initial provisioning, rate_limit 50/s: writes/s while writing (whole run) | ${prov50_rate}/s (${prov50_wall}/s), ${prov50_429} x 429 | 50/s | $(ratio "$prov50_rate" 50) |
| first cycle after the churn sync, incremental both sides (plans against the remembered accounts) vs a full plan | ${settle_secs}s, CPU ${settle_cpu}s, peak RSS ${settle_rss} MB, ${settle_requests} app requests | ${plan_secs}s, CPU ${plan_cpu}s | $(ratio "$settle_secs" "$plan_secs") |
| quiet cycle, nothing changed on either side (no plan made): wall time vs a full plan (goal <= 0.02x) | ${quiet_secs}s, CPU ${quiet_cpu}s, peak RSS ${quiet_rss} MB, ${quiet_requests} app requests | ${plan_secs}s, CPU ${plan_cpu}s | $(ratio "$quiet_secs" "$plan_secs") |
| the app's own answer to that cycle's one question (100 accounts sortBy=meta.lastModified newest first, by curl) vs the quiet cycle | ${sorted_secs}s | ${quiet_secs}s | $(ratio "$sorted_secs" "$quiet_secs") |
| the app's answer to the meta.lastModified ge filter (asked when the sorted page cannot tell, or by an app that does not sort), by curl, vs a full plan | ${filter_secs}s | ${plan_secs}s | $(ratio "$filter_secs" "$plan_secs") |
| sync, 1% churn, incremental both sides vs 5% of a full plan + its writes (${churn_apply_ms} ms applying) | ${churn_sync_inc_secs}s | ${churn_budget}s | $(ratio "$churn_sync_inc_secs" "$churn_budget") |
| full reconciliation (sync --full) vs max(raw directory read, raw app list) (goal <= 1.1x) | ${recon_secs}s, peak RSS ${recon_rss} MB | ${raw_max}s | $(ratio "$recon_secs" "$raw_max") |

plan with no changes said: $plan_pending
the churn sync read the app: $churn_read
the first cycle after the churn read the app: $settle_read
the quiet cycle read the app: $quiet_read
scim2-server never answers 429 (it does not throttle), so the zero-429 row shows the
limiter's pace, not a server's limit.
TABLE
if [ -n "${BENCH_HEAPTRACK:-}" ]; then
  echo
  echo "heaptrack, plan with no changes ($work/plan.heaptrack.zst):"
  heaptrack_print -f "$work/plan.heaptrack.zst" 2>/dev/null | grep -E '^peak (heap|RSS)'
fi
