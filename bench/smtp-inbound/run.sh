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
#
# Must run as root (Postfix master). Listens on 127.0.0.1 only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
MEASURE="python3 $HERE/measure.py"
# shellcheck source=../lib/private-postfix.sh
. "$HERE/../lib/private-postfix.sh"

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
BIN="$REPO/target/release/icsmail"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the private Postfix instance needs it)"
command -v smtp-source >/dev/null || die "smtp-source not found (apt-get install postfix)"
command -v postfix >/dev/null || die "postfix not found (apt-get install postfix)"

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
cleanup() {
  local rc=$?
  set +e
  if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; fi
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

# --- the load itself: smtp-source + polling of new/ (in the background so that a
#     signal interrupts the wait and the trap runs at once) ----------------------------
load_run() {
  local name=$1 d=$2 port=$3
  # shellcheck disable=SC2086
  SERVER_PID="$4" $MEASURE load "$name" "$d/mail/bench.test/user" "$MSGS" "$d/smtp-source.out" -- \
    smtp-source $SMTP_SOURCE_ARGS "127.0.0.1:$port" >"$d/result.json" &
  LOAD_PID=$!
  wait "$LOAD_PID" || die "measure.py load failed for $name"
  LOAD_PID=""
  cat "$d/result.json" >>"$RUNS"
  cat "$d/result.json" >&2
}

# --- one Postfix run ---------------------------------------------------------------------
run_postfix() {
  local n=$1 d="$WORK/postfix-$1" port
  port="$($MEASURE freeport)"
  mkdir -p "$d/etc" "$d/queue" "$d/data" "$d/mail"
  PF_DIRS+=("$d")
  chown 65534:65534 "$d/mail"   # virtual(8) delivers as uid/gid 65534 (nobody/nogroup)
  chown postfix "$d/data"
  {
    postfix_base_main_cf "$d"
    cat <<EOF
relayhost =
append_dot_mydomain = no
readme_directory = no
smtpd_banner = \$myhostname ESMTP
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = bench.test
virtual_mailbox_base = $d/mail
virtual_mailbox_maps = texthash:$d/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
default_process_limit = 100
EOF
  } >"$d/etc/main.cf"
  printf 'user@bench.test bench.test/user/\n' >"$d/etc/vmailbox"
  postfix_master_cf "$port" >"$d/etc/master.cf"
  postfix -c "$d/etc" check 2>"$d/check.log" || { cat "$d/check.log" >&2; die "postfix check failed"; }
  [ ! -s "$d/check.log" ] || { log "postfix check warnings:"; cat "$d/check.log" >&2; }
  postfix -c "$d/etc" start >"$d/start.log" 2>&1 || { cat "$d/start.log" >&2; die "postfix start failed"; }
  $MEASURE waitport "$port" 30 || die "postfix smtpd not listening on 127.0.0.1:$port"
  log "postfix run $n on 127.0.0.1:$port"
  load_run postfix "$d" "$port" "$(cat "$d/queue/pid/master.pid" 2>/dev/null | tr -d ' ')"
  postfix -c "$d/etc" stop >>"$d/start.log" 2>&1 || true
  for _ in $(seq 100); do postfix -c "$d/etc" status >/dev/null 2>&1 || break; sleep 0.1; done
  if grep -Eq '(warning|error|fatal|panic):' "$d/maillog" 2>/dev/null; then
    log "postfix maillog problems (first 10):"
    grep -E '(warning|error|fatal|panic):' "$d/maillog" | head -10 >&2
  fi
}

# --- one ics-mail run -------------------------------------------------------------------
run_icsmail() {
  local n=$1 d="$WORK/icsmail-$1" port
  port="$($MEASURE freeport)"
  mkdir -p "$d/state" "$d/mail"
  cat >"$d/config.json" <<EOF
{
  "domains": ["bench.test"],
  "heloName": "bench.test",
  "stateDir": "$d/state",
  "storage": {"path": "$d/mail"},
  "accounts": {"user@bench.test": {"hashedPassword": "$HASH"}},
  "smtp": {"port": $port, "interfaces": ["127.0.0.1"], "submissionPort": null,
           "limits": {"connectionsPerIp": 100}}
}
EOF
  "$BIN" smtpd --config "$d/config.json" 2>"$d/server.log" >"$d/server.out" &
  ICS_PID=$!
  if ! $MEASURE waitport "$port" 30; then
    tail -20 "$d/server.log" >&2
    die "icsmail not listening on 127.0.0.1:$port"
  fi
  log "icsmail run $n on 127.0.0.1:$port (pid $ICS_PID)"
  load_run icsmail "$d" "$port" "$ICS_PID"
  kill "$ICS_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$ICS_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$ICS_PID" 2>/dev/null || true
  wait "$ICS_PID" 2>/dev/null || true
  ICS_PID=""
  if grep -Eiq '(warn|error|panic)' "$d/server.log"; then
    log "icsmail log problems (first 10):"
    grep -Ei '(warn|error|panic)' "$d/server.log" | head -10 >&2
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
  if [ "$ONLY" != icsmail ]; then settle; run_postfix "$r"; fi
  if [ "$ONLY" != postfix ]; then settle; run_icsmail "$r"; fi
done

DATE="$(date +%Y-%m-%d)"
OUT="$REPO/bench/results/smtp-inbound-$DATE.json"
python3 - "$WORK/meta.json" <<EOF
import json, sys
json.dump({
  "benchmark": "smtp-inbound",
  "date": "$(date -Iseconds)",
  "host": "$(hostname)", "cpus": $(nproc), "kernel": "$(uname -r)",
  "messages": $MSGS, "sessions": $SESSIONS, "size": $SIZE, "rounds": $ROUNDS,
  "smtp_source_args": "$SMTP_SOURCE_ARGS",
  "postfix_version": "$(postconf -h mail_version 2>/dev/null)",
  "icsmail_commit": "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '-dirty')",
  "icsmail_binary_built": "$( [ -x "$BIN" ] && date -r "$BIN" -Iseconds)",
  "workdir": "$WORK", "fs": "$FSSRC $FSTYPE",
}, open(sys.argv[1], "w"))
EOF
$MEASURE report "$RUNS" "$WORK/fsync.json" "$WORK/meta.json" "$OUT"
