#!/usr/bin/env bash
# smtp-inbound, content-filter mode (issue 14): the same DKIM-signed message, MSGS times over
# SESSIONS concurrent sessions (Postfix's smtp-source -F), into each server's Maildir, with
# and without the content filters, runs alternated ROUNDS times:
#
#   plain    both servers as in run.sh's plain mode
#   filters  ics-mail: dkim.verify (DKIM, SPF and DMARC into Authentication-Results) and
#            antivirus.clamav (clamd INSTREAM) on;
#            Postfix: smtpd_milters = opendkim (verify mode, Authentication-Results) and
#            clamav-milter, both Debian's packages
#
# Both servers scan through one private clamd (signature database made here: the EICAR test
# signature) and resolve the DKIM key, SPF and DMARC records through one private dnsmasq on
# DNS_ADDR:53, so the comparison is what each MTA adds around the same checks.
# Before timing, each filters run checks that a sample message got dkim=pass and that an
# EICAR attachment is caught; after it, clamd's log must show a scan per message.
#
# Knobs: MSGS [2000] SESSIONS [20] SIZE [4096] body bytes ROUNDS [2] BASE [/var/tmp]
#        NO_BUILD [0] KEEP [0] IDLE_WAIT [15] MODE [both] plain|filters|both
#        DNS_ADDR [198.51.100.53] the DNS server's address, added to lo for the run (opendkim's
#                 resolver asks no server on 127.0.0.0/8) and removed at the end
# Must run as root. Listens on 127.0.0.1 (and DNS_ADDR) only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MEASURE="python3 $HERE/measure.py"
# shellcheck source=../lib/private-postfix.sh
. "$HERE/../lib/private-postfix.sh"
# shellcheck source=../lib/filters.sh
. "$HERE/../lib/filters.sh"
# shellcheck source=../lib/icsmail-config.sh
. "$HERE/../lib/icsmail-config.sh"

MSGS="${MSGS:-2000}"
SESSIONS="${SESSIONS:-20}"
SIZE="${SIZE:-4096}"
ROUNDS="${ROUNDS:-2}"
BASE="${BASE:-/var/tmp}"
NO_BUILD="${NO_BUILD:-0}"
KEEP="${KEEP:-0}"
IDLE_WAIT="${IDLE_WAIT:-15}"
DNS_ADDR="${DNS_ADDR:-198.51.100.53}"
MODE="${MODE:-both}"
BIN="$REPO/target/release/icsmail"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the private Postfix instance needs it)"
case "$MODE" in
  plain) MODES=(plain) ;;
  filters) MODES=(filters) ;;
  both) MODES=(plain filters) ;;
  *) die "MODE must be plain, filters or both (not $MODE)" ;;
esac

# --- the programs, from Debian (their system services are not started: private instances) --
need=()
command -v smtp-source >/dev/null || need+=(postfix)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v clamd >/dev/null || need+=(clamav-daemon)
command -v clamav-milter >/dev/null || need+=(clamav-milter)
command -v opendkim >/dev/null || need+=(opendkim)
/usr/bin/python3 -c 'import dkim' 2>/dev/null || need+=(python3-dkim)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]} (system services are not started)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need[@]}"
  if [ -d /run/systemd/system ]; then
    for unit in clamav-daemon clamav-freshclam clamav-milter opendkim; do
      systemctl disable --now "$unit.service" 2>/dev/null || true
    done
  fi
fi

WORK="$(mktemp -d "$BASE/ics-bench-filters.XXXXXX")"
chmod 755 "$WORK"
F="$WORK/filters"
mkdir -p "$F"
chmod 755 "$F"

PF_DIRS=()
ADDED_ADDR=""
ICS_PID=""
LOAD_PID=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; fi
  if [ -n "$ICS_PID" ] && kill -0 "$ICS_PID" 2>/dev/null; then
    kill "$ICS_PID"; wait "$ICS_PID" 2>/dev/null
  fi
  for d in "${PF_DIRS[@]}"; do
    postfix -c "$d/etc" status >/dev/null 2>&1 && postfix -c "$d/etc" abort >/dev/null 2>&1
  done
  filters_stop "$F"
  [ -z "$ADDED_ADDR" ] || ip addr del "$ADDED_ADDR/32" dev lo
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$NO_BUILD" != 1 ]; then
  log "cargo build --release"
  (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
fi
[ -x "$BIN" ] || die "$BIN missing"
cp "$BIN" "$WORK/icsmail"
BIN="$WORK/icsmail"
HASH="$(printf pw | "$BIN" hash-password)"

# --- the shared filters ------------------------------------------------------------------
if ! ip -4 addr show dev lo | grep -q " $DNS_ADDR/"; then
  ip addr add "$DNS_ADDR/32" dev lo || die "cannot add $DNS_ADDR to lo"
  ADDED_ADDR=$DNS_ADDR
fi
filters_dkim_key "$F"
filters_dns_start "$F" "$DNS_ADDR" || die "dnsmasq did not start on $DNS_ADDR:53"
filters_clamd_start "$F" || die "clamd did not start"
filters_milters_start "$F" "$DNS_ADDR" || die "opendkim or clamav-milter did not start"
filters_signed_message "$F" "$SIZE"
log "clamd, dnsmasq ($DNS_ADDR), opendkim and clamav-milter up; message $(wc -c <"$F/message.eml") bytes, DKIM-signed"

RUNS="$WORK/runs.jsonl"
: >"$RUNS"

# An EICAR attachment: each filters run must catch it before the clock starts.
eicar_message() {
  local eicar
  eicar="$(printf 'X5O!P%%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*')"
  printf 'From: <sender@bench.test>\r\nTo: <user@bench.test>\r\nSubject: eicar\r\n\r\n%s\r\n' "$eicar"
}

# before a filters run: a sample message gets dkim=pass; the EICAR message does not arrive
# as itself (ics-mail: a quarantine notice; Postfix + clamav-milter: held in its queue).
filters_check() {
  local name=$1 d=$2 port=$3 box="$2/mail/bench.test/user"
  smtp-source -c -s 1 -m 1 -F "$F/message.eml" -f "sender@$FILTERS_DOMAIN" -t user@bench.test \
    "127.0.0.1:$port" >/dev/null 2>&1 || die "$name: the sample message was refused"
  eicar_message >"$d/eicar.eml"
  smtp-source -c -s 1 -m 1 -F "$d/eicar.eml" -f "sender@$FILTERS_DOMAIN" -t user@bench.test \
    "127.0.0.1:$port" >/dev/null 2>&1 || true
  for _ in $(seq 100); do [ "$(ls "$box/new" 2>/dev/null | wc -l)" -ge 1 ] && break; sleep 0.1; done
  sleep 1
  grep -l 'dkim=pass' "$box"/new/* >/dev/null 2>&1 || die "$name: no dkim=pass on the sample"
  if grep -l 'EICAR-STANDARD' "$box"/new/* 2>/dev/null | xargs -r grep -L 'message/rfc822' | grep -q .; then
    die "$name: the EICAR message was delivered as itself"
  fi
  log "$name: the sample has dkim=pass; EICAR was caught"
  mkdir -p "$d/checked"
  mv "$box"/new/* "$d/checked/" 2>/dev/null || true
}

clamd_scans() {
  local n
  n=$(grep -c ': OK$' "$F/clamd.log" 2>/dev/null) || true
  echo "${n:-0}"
}

load_run() {
  local name=$1 mode=$2 d=$3 port=$4 pids=$5 before after
  before=$(clamd_scans)
  env MODE="$mode" SERVER_PID="$pids" \
    $MEASURE load "$name" "$d/mail/bench.test/user" "$MSGS" "$d/smtp-source.out" -- \
    smtp-source -c -s "$SESSIONS" -m "$MSGS" -F "$F/message.eml" \
    -f "sender@$FILTERS_DOMAIN" -t user@bench.test "127.0.0.1:$port" >"$d/result.json" &
  LOAD_PID=$!
  wait "$LOAD_PID" || die "measure.py load failed for $name"
  LOAD_PID=""
  after=$(clamd_scans)
  python3 - "$d/result.json" "$((after - before))" <<'EOF'
import json, sys
path, scans = sys.argv[1], int(sys.argv[2])
r = json.load(open(path)); r["clamd_scans_during"] = scans
with open(path, "w") as out:
    out.write(json.dumps(r) + "\n")
EOF
  if [ "$mode" = filters ] && [ "$((after - before))" -lt "$MSGS" ]; then
    die "$name: clamd scanned $((after - before)) of $MSGS messages"
  fi
  cat "$d/result.json" >>"$RUNS"
  cat "$d/result.json" >&2
}

run_postfix() {
  local n=$1 mode=$2 d="$WORK/postfix-$2-$1" port milters=""
  port="$($MEASURE freeport)"
  mkdir -p "$d/etc" "$d/queue" "$d/data" "$d/mail"
  PF_DIRS+=("$d")
  chown 65534:65534 "$d/mail"
  chown postfix "$d/data"
  [ "$mode" = filters ] && milters="smtpd_milters = unix:$F/milter/opendkim.sock, unix:$F/milter/clamav-milter.sock
milter_default_action = tempfail"
  {
    postfix_base_main_cf "$d"
    postfix_virtual_main_cf "$d"
    echo "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination"
    echo "$milters"
  } >"$d/etc/main.cf"
  postfix_master_cf "$port" >"$d/etc/master.cf"
  postfix -c "$d/etc" start >"$d/start.log" 2>&1 || { cat "$d/start.log" >&2; die "postfix start failed"; }
  $MEASURE waitport "$port" 30 || die "postfix not listening"
  [ "$mode" = filters ] && filters_check "postfix-$mode-$n" "$d" "$port"
  settle
  log "postfix $mode run $n on 127.0.0.1:$port"
  load_run postfix "$mode" "$d" "$port" "$(tr -d ' ' <"$d/queue/pid/master.pid") $(cat "$F/opendkim.pid.bg" "$F/clamav-milter.pid.bg" | tr '\n' ' ')"
  postfix -c "$d/etc" stop >>"$d/start.log" 2>&1 || true
  for _ in $(seq 100); do postfix -c "$d/etc" status >/dev/null 2>&1 || break; sleep 0.1; done
}

run_icsmail() {
  local n=$1 mode=$2 d="$WORK/icsmail-$2-$1" port filters=""
  port="$($MEASURE freeport)"
  mkdir -p "$d/state" "$d/mail"
  [ "$mode" = filters ] && filters=",
  \"dkim\": {\"verify\": true},
  \"antivirus\": {\"clamav\": {\"enable\": true, \"socket\": \"$F/clamd.sock\"}},
  \"dns\": {\"nameservers\": [\"$DNS_ADDR:53\"]}"
  icsmail_bench_config "$d" "$port" "$HASH" "$filters"
  "$BIN" smtpd --config "$d/config.json" 2>"$d/server.log" >"$d/server.out" &
  ICS_PID=$!
  $MEASURE waitport "$port" 30 || { tail -20 "$d/server.log" >&2; die "icsmail not listening"; }
  [ "$mode" = filters ] && filters_check "icsmail-$mode-$n" "$d" "$port"
  settle
  log "icsmail $mode run $n on 127.0.0.1:$port (pid $ICS_PID)"
  load_run icsmail "$mode" "$d" "$port" "$ICS_PID"
  kill "$ICS_PID" 2>/dev/null || true
  wait "$ICS_PID" 2>/dev/null || true
  ICS_PID=""
}

settle() {
  sync
  BUSY_BEFORE="$($MEASURE idle 20 "$IDLE_WAIT")" || log "WARNING: machine still ${BUSY_BEFORE}% busy"
  export BUSY_BEFORE
}

for round in $(seq "$ROUNDS"); do
  for mode in "${MODES[@]}"; do
    run_postfix "$round" "$mode"
    run_icsmail "$round" "$mode"
  done
done

# --- summary: means per mode and server, and the ratio -------------------------------------
python3 - "$RUNS" "$MSGS" "$SESSIONS" "$(wc -c <"$F/message.eml")" <<'EOF'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"\nsmtp-inbound filters: {sys.argv[2]} messages of {sys.argv[4]} bytes (DKIM-signed), "
      f"{sys.argv[3]} sessions")
print(f"{'mode':<8} {'server':<8} {'msgs/s (runs)':<28} {'mean':>8} {'cpu ms/msg':>10}")
means = {}
for mode in ("plain", "filters"):
    for server in ("postfix", "icsmail"):
        rs = [r for r in runs if r["mode"] == mode and r["server"] == server]
        if not rs:
            continue
        ok = [r for r in rs if r["ok"]]
        rates = [r["msgs_per_s"] for r in ok]
        mean = sum(rates) / len(rates) if rates else 0
        cpu = (sum(r["cpu_s_server"] for r in ok) / sum(r["messages"] for r in ok) * 1000
               if ok else 0)
        means[(mode, server)] = mean
        bad = len(rs) - len(ok)
        print(f"{mode:<8} {server:<8} {', '.join(f'{x:.0f}' for x in rates):<28} {mean:>8.0f} "
              f"{cpu:>10.2f}" + (f"  ({bad} run(s) FAILED)" if bad else ""))
for mode in ("plain", "filters"):
    p, i = means.get((mode, "postfix")), means.get((mode, "icsmail"))
    if p and i:
        print(f"{mode}: ics-mail / Postfix = {i / p:.2f}x")
EOF
