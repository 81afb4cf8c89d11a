#!/usr/bin/env bash
# smtp-inbound benchmark: Postfix (virtual -> Maildir) vs ics-mail (smtpd -> Maildir).
#
# Sends MSGS small messages over SESSIONS concurrent SMTP sessions with Postfix's
# smtp-source and measures the wall time from the start of the load until all MSGS
# messages are files in the recipient's Maildir new/ directory. Runs are alternated
# (postfix, icsmail, postfix, icsmail, ...) ROUNDS times.
#
# Environment knobs (defaults in brackets):
#   MSGS [5000]  SESSIONS [20]  SIZE [1024] payload bytes  ROUNDS [2]
#   ONLY [both]  postfix | icsmail          BASE [/var/tmp] where the temp dir goes
#   NO_BUILD [0] 1 = don't run cargo build --release
#   KEEP [0]     1 = keep the temp dir (configs, logs, maildirs) for inspection
#   EXTRA_SMTP_SOURCE_ARGS []  e.g. "-d" to reuse connections
#   IDLE_WAIT [15] before each run, wait up to this many seconds for the machine to go
#                quiet (<20% CPU busy); the busy % seen is recorded with the run
#   MODE [plain] plain | policy | both (each round runs plain, then policy); POLICY=1 is
#                MODE=policy. policy: both servers check 1,000 white/blacklist entries, two
#                DNSBL zones (served by dnsmasq) and greylisting (Postfix: access tables,
#                reject_rbl_client, Postgrey), warmed up before the clock runs (README)
#   GREY_DELAY [1] greylisting delay of the policy mode, seconds (ignoreSeconds / --delay)
#   DNS_ADDR [127.0.0.2] where the policy mode's dnsmasq listens (port 53: resolv.conf has
#                no port); Postfix sees it through a private resolv.conf (unshare --mount)
#
# Must run as root (Postfix master). Listens on 127.0.0.1 only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MEASURE="python3 $HERE/measure.py"
# shellcheck source=../lib/private-postfix.sh
. "$HERE/../lib/private-postfix.sh"
# shellcheck source=../lib/icsmail-config.sh
. "$HERE/../lib/icsmail-config.sh"

MSGS="${MSGS:-5000}"
SESSIONS="${SESSIONS:-20}"
SIZE="${SIZE:-1024}"
ROUNDS="${ROUNDS:-2}"
ONLY="${ONLY:-both}"
BASE="${BASE:-/var/tmp}"
NO_BUILD="${NO_BUILD:-0}"
KEEP="${KEEP:-0}"
EXTRA_SMTP_SOURCE_ARGS="${EXTRA_SMTP_SOURCE_ARGS:-}"
IDLE_WAIT="${IDLE_WAIT:-15}"
MODE="${MODE:-plain}"
[ "${POLICY:-0}" != 1 ] || MODE=policy
GREY_DELAY="${GREY_DELAY:-1}"
DNS_ADDR="${DNS_ADDR:-127.0.0.2}"
BIN="$REPO/target/release/icsmail"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the private Postfix instance needs it)"
command -v smtp-source >/dev/null || die "smtp-source not found (apt-get install postfix)"
command -v postfix >/dev/null || die "postfix not found (apt-get install postfix)"
case "$MODE" in
  plain) MODES=(plain) ;;
  policy) MODES=(policy) ;;
  both) MODES=(plain policy) ;;
  *) die "MODE must be plain, policy or both (not $MODE)" ;;
esac
if [ "$MODE" != plain ]; then
  # The policy mode's extra programs, from Debian (their system services are not started:
  # this script runs private instances)
  need=()
  command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
  command -v postgrey >/dev/null || need+=(postgrey)
  command -v postmap >/dev/null || die "postmap not found (apt-get install postfix)"
  if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]} for the policy mode (system services are not started)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
    if [[ " ${need[*]} " == *" postgrey "* ]] && [ -d /run/systemd/system ]; then
      systemctl disable --now postgrey.service || true
    fi
  fi
  command -v unshare >/dev/null || die "unshare not found (util-linux)"
fi

WORK="$(mktemp -d "$BASE/ics-bench-smtp-inbound.XXXXXX")"
chmod 755 "$WORK"   # postfix and nobody must be able to traverse it
FSTYPE="$(findmnt -n -o FSTYPE -T "$WORK" || stat -f -c %T "$WORK")"
FSSRC="$(findmnt -n -o SOURCE -T "$WORK" || echo '?')"
case "$FSTYPE" in
  tmpfs|ramfs) die "$WORK is on $FSTYPE; fsync cost is the point — set BASE to a real disk" ;;
esac

# --- cleanup of everything this script started ---------------------------------------
PF_DIRS=()
ICS_PID=""
LOAD_PID=""
DNS_PID=""
PG_PID=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; fi
  for pid in "$PG_PID" "$DNS_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null; fi
  done
  if [ -n "$ICS_PID" ] && kill -0 "$ICS_PID" 2>/dev/null; then
    kill "$ICS_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$ICS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$ICS_PID" 2>/dev/null
  fi
  for d in "${PF_DIRS[@]}"; do
    if postfix -c "$d/etc" status >/dev/null 2>&1; then
      postfix -c "$d/etc" abort >/dev/null 2>&1 || true
    fi
  done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RUNS="$WORK/runs.jsonl"
: >"$RUNS"
SMTP_SOURCE_ARGS="-c -s $SESSIONS -m $MSGS -l $SIZE -f sender@bench.test -t user@bench.test $EXTRA_SMTP_SOURCE_ARGS"

# --- ics-mail binary --------------------------------------------------------------------
if [ "$ONLY" != postfix ]; then
  if [ "$NO_BUILD" != 1 ]; then
    log "cargo build --release"
    (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
  fi
  [ -x "$BIN" ] || die "$BIN missing"
  # run a private copy: others may rebuild target/release while the benchmark runs
  cp "$BIN" "$WORK/icsmail"
  touch -r "$BIN" "$WORK/icsmail"
  BIN="$WORK/icsmail"
  HASH="$(printf pw | "$BIN" hash-password)" || die "icsmail hash-password failed"
fi

# --- disk fsync cost -------------------------------------------------------------------
log "measuring fsync cost on $FSSRC ($FSTYPE)"
$MEASURE fsync "$WORK/fsync-probe" >"$WORK/fsync.json"
cat "$WORK/fsync.json" >&2

# --- the policy mode's shared pieces: the list entries, and one dnsmasq for both servers --
ZONES="bl1.bench.test bl2.bench.test"
if [ "$MODE" != plain ]; then
  mkdir -p "$WORK/policy"
  $MEASURE policy-tables "$WORK/policy" >"$WORK/policy/entries.json"
  : >"$WORK/empty"
  printf 'nameserver %s\n' "$DNS_ADDR" >"$WORK/resolv.conf"
  # dnsmasq answers only from its command line: the zones are local (anything not listed is
  # NXDOMAIN, answered at once and not forwarded), 127.0.0.2 is listed in both (RFC 5782's
  # test address, for the check before each run), 127.0.0.1 — the load's client — in none.
  # Every query is logged: the runs count what each server asked.
  dns_args=(--keep-in-foreground --no-daemon --conf-file=/dev/null --no-resolv --no-hosts
            --bind-interfaces "--listen-address=$DNS_ADDR" --port=53
            --local=/127.in-addr.arpa/ --log-queries "--log-facility=$WORK/dnsmasq.log"
            --user=root "--pid-file=$WORK/dnsmasq.pid")
  for z in $ZONES; do
    dns_args+=("--local=/$z/" "--host-record=2.0.0.127.$z,127.0.0.2"
               "--txt-record=2.0.0.127.$z,listed for testing")
  done
  dnsmasq "${dns_args[@]}" >"$WORK/dnsmasq.out" 2>&1 &
  DNS_PID=$!
  for _ in $(seq 50); do
    grep -q 'started' "$WORK/dnsmasq.log" 2>/dev/null && break
    kill -0 "$DNS_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$DNS_PID" 2>/dev/null || { cat "$WORK/dnsmasq.out" "$WORK/dnsmasq.log" >&2 2>/dev/null; die "dnsmasq did not start on $DNS_ADDR:53"; }
  log "dnsmasq on $DNS_ADDR:53 (pid $DNS_PID), zones $ZONES"
fi

# --- the load itself: smtp-source + polling of new/ (in the background so that a
#     signal interrupts the wait and the trap runs at once) ----------------------------
load_run() {
  local name=$1 mode=$2 d=$3 port=$4 pids=$5
  local dns_env=()
  [ "$mode" = plain ] || dns_env=("DNS_LOG=$WORK/dnsmasq.log" "DNS_PID=$DNS_PID")
  # shellcheck disable=SC2086
  env MODE="$mode" SERVER_PID="$pids" "${dns_env[@]}" \
    $MEASURE load "$name" "$d/mail/bench.test/user" "$MSGS" "$d/smtp-source.out" -- \
    smtp-source $SMTP_SOURCE_ARGS "127.0.0.1:$port" >"$d/result.json" &
  LOAD_PID=$!
  wait "$LOAD_PID" || die "measure.py load failed for $name"
  LOAD_PID=""
}

# after a run: what its logs say the policy did, and the result into the runs file
record_run() {
  local name=$1 mode=$2 d=$3
  [ "$mode" = plain ] || $MEASURE evidence "$d/result.json" "$name" "$d"
  cat "$d/result.json" >>"$RUNS"
  cat "$d/result.json" >&2
}

# before a policy run: the DNSBL and a blacklisted sender refuse, greylisting warmed up
policy_check() {
  local name=$1 d=$2 port=$3
  if ! $MEASURE policy-check "$name" "$port" "$d/mail/bench.test/user" "$GREY_DELAY" \
      >"$d/policy-check.json"; then
    cat "$d/policy-check.json" >&2
    die "$name: the policy checks before the run did not go as expected"
  fi
  log "$name policy check: $(cat "$d/policy-check.json")"
}

# --- one Postfix run ---------------------------------------------------------------------
run_postfix() {
  local n=$1 mode=$2 d="$WORK/postfix-$2-$1" port pgport="" pids
  port="$($MEASURE freeport)"
  mkdir -p "$d/etc" "$d/queue" "$d/data" "$d/mail"
  PF_DIRS+=("$d")
  chown 65534:65534 "$d/mail"   # virtual(8) delivers as uid/gid 65534 (nobody/nogroup)
  chown postfix "$d/data"
  if [ "$mode" = policy ]; then
    # Postgrey as Debian runs it, but on its own port and database, with the same delay as
    # ics-mail and its auto-whitelist after one passed retry (ics-mail passes the network
    # after one); its stock whitelists of big senders' names left out (ics-mail has none)
    pgport="$($MEASURE freeport)"
    mkdir -p "$d/postgrey"
    chown postgrey:postgrey "$d/postgrey"
    postgrey "--inet=127.0.0.1:$pgport" "--delay=$GREY_DELAY" "--dbdir=$d/postgrey" \
      --auto-whitelist-clients=1 "--whitelist-clients=$WORK/empty" \
      "--whitelist-recipients=$WORK/empty" --user=postgrey --group=postgrey \
      >"$d/postgrey.log" 2>&1 &
    PG_PID=$!
    $MEASURE waitport "$pgport" 30 || { cat "$d/postgrey.log" >&2; die "postgrey not listening on $pgport"; }
    cp "$WORK/policy/postfix-client_access" "$d/etc/client_access"
    cp "$WORK/policy/postfix-client_networks.cidr" "$d/etc/client_networks.cidr"
    cp "$WORK/policy/postfix-sender_access" "$d/etc/sender_access"
  fi
  {
    postfix_base_main_cf "$d"
    postfix_virtual_main_cf "$d"
    if [ "$mode" = policy ]; then
      # the equivalent of ics-mail's checks: the lists (client: address, network, verified
      # host name; sender: mailbox, domain), both DNSBL zones, then greylisting. No
      # permit_mynetworks before Postgrey: the load's 127.0.0.1 is greylisted like any client.
      cat <<EOF2
smtpd_client_restrictions = check_client_access hash:$d/etc/client_access,
    check_client_access cidr:$d/etc/client_networks.cidr,
    $(for z in $ZONES; do printf 'reject_rbl_client %s, ' "$z"; done)permit
smtpd_sender_restrictions = check_sender_access hash:$d/etc/sender_access
smtpd_recipient_restrictions = reject_unauth_destination,
    check_policy_service inet:127.0.0.1:$pgport
EOF2
    else
      echo "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination"
    fi
  } >"$d/etc/main.cf"
  postfix_master_cf "$port" >"$d/etc/master.cf"
  if [ "$mode" = policy ]; then
    postmap -c "$d/etc" "hash:$d/etc/client_access" "hash:$d/etc/sender_access" \
      || die "postmap failed"
  fi
  postfix -c "$d/etc" check 2>"$d/check.log" || { cat "$d/check.log" >&2; die "postfix check failed"; }
  [ ! -s "$d/check.log" ] || { log "postfix check warnings:"; cat "$d/check.log" >&2; }
  if [ "$mode" = policy ]; then
    # Postfix's resolver reads /etc/resolv.conf: it gets one naming dnsmasq in a mount
    # namespace of its own (the master and every child inherit it; the machine's is untouched)
    unshare --mount --propagation private sh -c \
      'mount --bind "$1" /etc/resolv.conf && exec postfix -c "$2" start' \
      sh "$WORK/resolv.conf" "$d/etc" >"$d/start.log" 2>&1 \
      || { cat "$d/start.log" >&2; die "postfix start (in its mount namespace) failed"; }
  else
    postfix -c "$d/etc" start >"$d/start.log" 2>&1 || { cat "$d/start.log" >&2; die "postfix start failed"; }
  fi
  $MEASURE waitport "$port" 30 || die "postfix smtpd not listening on 127.0.0.1:$port"
  log "postfix $mode run $n on 127.0.0.1:$port"
  [ "$mode" = plain ] || policy_check postfix "$d" "$port"
  pids="$(cat "$d/queue/pid/master.pid" 2>/dev/null | tr -d ' ') $PG_PID"
  load_run postfix "$mode" "$d" "$port" "$pids"
  postfix -c "$d/etc" stop >>"$d/start.log" 2>&1 || true
  for _ in $(seq 100); do postfix -c "$d/etc" status >/dev/null 2>&1 || break; sleep 0.1; done
  if [ -n "$PG_PID" ]; then
    kill "$PG_PID" 2>/dev/null || true
    wait "$PG_PID" 2>/dev/null || true
    PG_PID=""
  fi
  record_run postfix "$mode" "$d"
  if grep -Eq '(warning|error|fatal|panic):' "$d/maillog" 2>/dev/null; then
    log "postfix maillog problems (first 10):"
    grep -E '(warning|error|fatal|panic):' "$d/maillog" | head -10 >&2
  fi
}

# --- one ics-mail run -------------------------------------------------------------------
run_icsmail() {
  local n=$1 mode=$2 d="$WORK/icsmail-$2-$1" port policy=""
  port="$($MEASURE freeport)"
  mkdir -p "$d/state" "$d/mail"
  if [ "$mode" = policy ]; then
    # the same entries, zones and delay; the forward/reverse DNS check off (Postfix runs no
    # reject_unknown_client_hostname either; both still look up the client's name for the
    # lists' name entries)
    policy=",
  \"lists\": $(cat "$WORK/policy/lists.json"),
  \"spam\": {\"dnsbl\": [$(printf '"%s",' $ZONES | sed 's/,$//')],
           \"greylist\": {\"enable\": true, \"ignoreSeconds\": $GREY_DELAY, \"awaitHours\": 1, \"keepDays\": 1},
           \"requireReverseDns\": false},
  \"dns\": {\"nameservers\": [\"$DNS_ADDR:53\"]}"
  fi
  icsmail_bench_config "$d" "$port" "$HASH" "$policy"
  "$BIN" smtpd --config "$d/config.json" 2>"$d/server.log" >"$d/server.out" &
  ICS_PID=$!
  if ! $MEASURE waitport "$port" 30; then
    tail -20 "$d/server.log" >&2
    die "icsmail not listening on 127.0.0.1:$port"
  fi
  log "icsmail $mode run $n on 127.0.0.1:$port (pid $ICS_PID)"
  [ "$mode" = plain ] || policy_check icsmail "$d" "$port"
  load_run icsmail "$mode" "$d" "$port" "$ICS_PID"
  kill "$ICS_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$ICS_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$ICS_PID" 2>/dev/null || true
  wait "$ICS_PID" 2>/dev/null || true
  ICS_PID=""
  record_run icsmail "$mode" "$d"
  # WARN/ERROR lines and panics (not INFO lines of the module icsmail::smtp::error, which
  # logs the policy mode's expected refusals)
  if grep -Eq '^[^ ]+ +(WARN|ERROR) |panicked' "$d/server.log"; then
    log "icsmail log problems (first 10):"
    grep -E '^[^ ]+ +(WARN|ERROR) |panicked' "$d/server.log" | head -10 >&2
  fi
}

# flush dirty pages left by the previous run so runs start alike
# (maildirs are only removed at the end: deleting files mid-benchmark triggers discards).
# Then wait for other work on the host to calm down; record how busy it was.
settle() {
  sync
  if BUSY_BEFORE="$($MEASURE idle 20 "$IDLE_WAIT")"; then :; else
    log "WARNING: machine still ${BUSY_BEFORE}% CPU busy after ${IDLE_WAIT}s; this run will be noisy"
  fi
  export BUSY_BEFORE
}

for r in $(seq "$ROUNDS"); do
  for m in "${MODES[@]}"; do
    if [ "$ONLY" != icsmail ]; then settle; run_postfix "$r" "$m"; fi
    if [ "$ONLY" != postfix ]; then settle; run_icsmail "$r" "$m"; fi
  done
done

DATE="$(date +%Y-%m-%d)"
OUT="$REPO/bench/results/smtp-inbound-$DATE.json"
if [ "$MODE" != plain ]; then
  cat >"$WORK/policy/meta.json" <<EOF2
{"entries": $(cat "$WORK/policy/entries.json"), "dnsbl_zones": "$ZONES",
 "greylist_delay_s": $GREY_DELAY, "dns": "$DNS_ADDR:53",
 "dnsmasq_version": "$(dnsmasq --version | head -1)",
 "postgrey_version": "$(dpkg-query -W -f='${Version}' postgrey 2>/dev/null)"}
EOF2
fi
python3 - "$WORK/meta.json" <<EOF2
import json, os, sys
policy = "$WORK/policy/meta.json"
json.dump({
  "benchmark": "smtp-inbound",
  "date": "$(date -Iseconds)",
  "host": "$(hostname)", "cpus": $(nproc), "kernel": "$(uname -r)",
  "messages": $MSGS, "sessions": $SESSIONS, "size": $SIZE, "rounds": $ROUNDS,
  "modes": "${MODES[*]}", "policy": json.load(open(policy)) if os.path.exists(policy) else None,
  "smtp_source_args": "$SMTP_SOURCE_ARGS",
  "postfix_version": "$(postconf -h mail_version 2>/dev/null)",
  "icsmail_commit": "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '-dirty')",
  "icsmail_binary_built": "$( [ -x "$BIN" ] && date -r "$BIN" -Iseconds)",
  "workdir": "$WORK", "fs": "$FSSRC $FSTYPE",
}, open(sys.argv[1], "w"))
EOF2
$MEASURE report "$RUNS" "$WORK/fsync.json" "$WORK/meta.json" "$OUT"
