#!/usr/bin/env bash
# smtp-outbound benchmark: the outbound queue of ics-mail against Postfix's, both relaying
# MSGS queued messages to the same kind of local sink (Postfix's smtp-sink), in one run.
#
# For each server: fill its queue while the sink is down (nothing is delivered, everything is
# deferred), start the sink, then flush the queue and time it until the queue is empty.
#   Postfix: smtp-source → smtpd with defer_transports=smtp; then defer_transports= , reload,
#            `postqueue -f`; done when incoming/, active/ and deferred/ are empty.
#   ics-mail: authenticated submission (helper.py inject) → queue (first attempt refused by the
#            dead sink port); daemon stopped; then `icsmail queue flush`; done when
#            <stateDir>/queue holds no message.
# Both relay to 127.0.0.1:<sink port> (relayhost / relay.host), plain SMTP with PIPELINING.
#
# Environment knobs (defaults in brackets):
#   MSGS [5000]  SIZE [1024] body bytes  ROUNDS [1]  ONLY [both] postfix | icsmail
#   BASE [/var/tmp]  NO_BUILD [0]  KEEP [0]  INJECT_THREADS [10]
#   ICSMAIL_BIN [$CARGO_TARGET_DIR or target]/release/icsmail
# Must run as root (Postfix master). Listens on 127.0.0.1 only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
H="python3 $HERE/helper.py"
# shellcheck source=../lib/private-postfix.sh
. "$HERE/../lib/private-postfix.sh"

MSGS="${MSGS:-5000}"
SIZE="${SIZE:-1024}"
ROUNDS="${ROUNDS:-1}"
ONLY="${ONLY:-both}"
BASE="${BASE:-/var/tmp}"
NO_BUILD="${NO_BUILD:-0}"
KEEP="${KEEP:-0}"
INJECT_THREADS="${INJECT_THREADS:-10}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
BIN="${ICSMAIL_BIN:-$TARGET_DIR/release/icsmail}"
PASSWORD="bench-password"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the private Postfix instance needs it)"
for tool in smtp-sink smtp-source postfix postconf postqueue; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install postfix)"
done

WORK="$(mktemp -d "$BASE/ics-bench-smtp-outbound.XXXXXX")"
chmod 755 "$WORK"

SINK_PID=""
ICS_PID=""
PF_DIRS=()
cleanup() {
  local rc=$?
  set +e
  for pid in "$SINK_PID" "$ICS_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null; fi
  done
  for d in "${PF_DIRS[@]}"; do
    postfix -c "$d/etc" status >/dev/null 2>&1 && postfix -c "$d/etc" abort >/dev/null 2>&1
  done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start_sink() {
  local port=$1 out=$2
  smtp-sink -c -u nobody "127.0.0.1:$port" 1000 >"$out" 2>&1 &
  SINK_PID=$!
  wait_port "$port" || die "smtp-sink not listening on $port"
}

stop_sink() {
  kill "$SINK_PID" 2>/dev/null || true
  wait "$SINK_PID" 2>/dev/null || true
  SINK_PID=""
}

RUNS="$WORK/runs.jsonl"
: >"$RUNS"
record() { # server round seconds sunk
  python3 -c "import json,sys; s=float(sys.argv[3]); print(json.dumps({'server': sys.argv[1], 'round': int(sys.argv[2]), 'messages': $MSGS, 'seconds': s, 'rate': $MSGS / s, 'sink_count': int(sys.argv[4])}))" \
    "$1" "$2" "$3" "$4" | tee -a "$RUNS" >&2
}

if [ "$ONLY" != postfix ]; then
  if [ "$NO_BUILD" != 1 ]; then
    log "cargo build --release"
    (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
  fi
  [ -x "$BIN" ] || die "$BIN missing"
  HASH="$(printf '%s' "$PASSWORD" | "$BIN" hash-password)" || die "hash-password failed"
fi

run_postfix() {
  local n=$1 d="$WORK/postfix-$1" smtpd_port sink_port
  smtpd_port="$($H freeport)"
  sink_port="$($H freeport)"
  mkdir -p "$d/etc" "$d/queue" "$d/data"
  PF_DIRS+=("$d")
  chown postfix "$d/data"
  {
    postfix_base_main_cf "$d"
    cat <<EOF
relayhost = [127.0.0.1]:$sink_port
defer_transports = smtp
smtp_tls_security_level = none
EOF
  } >"$d/etc/main.cf"
  postfix_master_cf "$smtpd_port" >"$d/etc/master.cf"
  postfix -c "$d/etc" start >"$d/start.log" 2>&1 || { cat "$d/start.log" >&2; die "postfix start failed"; }
  wait_port "$smtpd_port" || die "postfix smtpd not listening"
  log "postfix $n: queueing $MSGS messages (delivery deferred)"
  smtp-source -c -s 20 -m "$MSGS" -l "$SIZE" -f sender@bench.test -t user@sink.test \
    "127.0.0.1:$smtpd_port" >"$d/smtp-source.out" 2>&1
  for _ in $(seq 600); do
    [ "$(find "$d/queue/deferred" -type f | wc -l)" -ge "$MSGS" ] && break
    sleep 0.2
  done
  [ "$(find "$d/queue/deferred" -type f | wc -l)" -ge "$MSGS" ] || die "postfix did not queue $MSGS messages"
  start_sink "$sink_port" "$d/sink.out"
  postconf -c "$d/etc" -e "defer_transports ="
  postfix -c "$d/etc" reload >>"$d/start.log" 2>&1
  sync
  log "postfix $n: flushing to the sink"
  local start end seconds
  start=$(date +%s.%N)
  postqueue -c "$d/etc" -f
  $H wait-empty "$d/queue/incoming" "$d/queue/active" "$d/queue/deferred" 600 >/dev/null
  end=$(date +%s.%N)
  seconds=$(python3 -c "print($end - $start)")
  sleep 0.5
  stop_sink
  record postfix "$n" "$seconds" "$($H sink-count "$d/sink.out")"
  postfix -c "$d/etc" stop >>"$d/start.log" 2>&1 || true
}

run_icsmail() {
  local n=$1 d="$WORK/icsmail-$1" smtp_port sink_port
  smtp_port="$($H freeport)"
  sink_port="$($H freeport)"
  mkdir -p "$d/state" "$d/mail"
  cat >"$d/config.json" <<EOF
{
  "domains": ["bench.test"],
  "heloName": "bench.test",
  "stateDir": "$d/state",
  "storage": {"path": "$d/mail"},
  "accounts": {"sender@bench.test": {"hashedPassword": "$HASH"}},
  "smtp": {"port": $smtp_port, "interfaces": ["127.0.0.1"], "submissionPort": null,
           "limits": {"connectionsPerIp": 100}},
  "relay": {"host": "127.0.0.1", "port": $sink_port},
  "queue": {"interval": 60, "delayMin": 60, "delayMax": 120, "maxLifetime": 1440}
}
EOF
  "$BIN" smtpd --config "$d/config.json" 2>"$d/server.log" >"$d/server.out" &
  ICS_PID=$!
  wait_port "$smtp_port" || { tail -20 "$d/server.log" >&2; die "icsmail not listening"; }
  log "icsmail $n: queueing $MSGS messages (the sink is down: first attempts fail)"
  $H inject "$smtp_port" sender@bench.test "$PASSWORD" "$MSGS" "$SIZE" "$INJECT_THREADS"
  sleep 2
  kill "$ICS_PID"; wait "$ICS_PID" 2>/dev/null || true
  ICS_PID=""
  local queued
  queued=$(find "$d/state/queue" -maxdepth 1 -name '*.json' | wc -l)
  [ "$queued" -ge "$MSGS" ] || die "only $queued messages queued"
  start_sink "$sink_port" "$d/sink.out"
  sync
  log "icsmail $n: flushing to the sink"
  local start end seconds
  start=$(date +%s.%N)
  RUST_LOG=warn "$BIN" queue flush --config "$d/config.json" 2>"$d/flush.log"
  $H wait-empty "$d/state/queue" 60 >/dev/null
  end=$(date +%s.%N)
  seconds=$(python3 -c "print($end - $start)")
  sleep 0.5
  stop_sink
  record icsmail "$n" "$seconds" "$($H sink-count "$d/sink.out")"
}

for r in $(seq "$ROUNDS"); do
  if [ "$ONLY" != icsmail ]; then run_postfix "$r"; fi
  if [ "$ONLY" != postfix ]; then run_icsmail "$r"; fi
done

python3 - "$WORK/meta.json" <<EOF
import json, sys
json.dump({
  "benchmark": "smtp-outbound", "date": "$(date -Iseconds)", "host": "$(hostname)",
  "cpus": $(nproc), "messages": $MSGS, "size": $SIZE, "rounds": $ROUNDS,
  "postfix_version": "$(postconf -h mail_version 2>/dev/null)",
  "icsmail_commit": "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '-dirty')",
}, open(sys.argv[1], "w"))
EOF
$H report "$RUNS" "$WORK/meta.json" "$REPO/bench/results/smtp-outbound-$(date +%Y-%m-%d).json"
