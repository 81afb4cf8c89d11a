#!/usr/bin/env bash
# IMAP benchmark: ics-mail (`icsmail imapd`) against a private Dovecot, same data set, same
# scripted workload with CLIENTS parallel client processes; see bench/README.md and bench.py.
#
# Environment knobs (defaults in brackets):
#   USERS [10] accounts   MSGS [2000] messages per account   CLIENTS [10] client processes
#   DURATION [20] seconds of load per server   ITER [50] commands per session after the
#   initial FETCH 1:*   IDLE_SESSIONS [1000] idle IDLE sessions for the memory test (0 = skip)
#   ONLY [both] icsmail | dovecot   NO_BUILD [0] 1 = don't run cargo build --release
#   SCENARIO [both] separate (an account per client) | shared (all clients on one mailbox)
#   FETCH_ALL ["FLAGS ENVELOPE BODYSTRUCTURE"] items of the FETCH 1:* that opens each session
#   ICSMAIL_BIN [target/release/icsmail] the binary (e.g. a copy taken while others build)
#   KEEP [0] 1 = keep the temp dir   BASE [/var/tmp] where the temp dir goes
#
# Must run as root (the private Dovecot). Listens on 127.0.0.1 only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ONLY="${ONLY:-both}"
BASE="${BASE:-/var/tmp}"
NO_BUILD="${NO_BUILD:-0}"
KEEP="${KEEP:-0}"
BIN="${ICSMAIL_BIN:-$REPO/target/release/icsmail}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the private Dovecot needs it)"
if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/imap ]; then
  log "installing dovecot-imapd (its system service is not started)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends dovecot-imapd
fi
if [ "$NO_BUILD" != 1 ]; then
  (cd "$REPO" && cargo build --release)
fi
[ -x "$BIN" ] || die "$BIN not found (cargo build --release)"
if [ "$ONLY" != dovecot ]; then
  "$BIN" imapd --help >/dev/null 2>&1 || die "$BIN has no imapd command yet"
fi

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
WORK="$(mktemp -d "$BASE/ics-bench-imap.XXXXXX")"
chmod 755 "$WORK"
cleanup() {
  local rc=$?
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$REPO/bench/results"
OUT="$REPO/bench/results/imap-$(date +%F).json"
if [ -e "$OUT" ]; then OUT="$REPO/bench/results/imap-$(date +%F-%H%M).json"; fi
/usr/bin/python3 "$HERE/bench.py" --bin "$BIN" --work "$WORK" --out "$OUT" --only "$ONLY"
log "results: $OUT"
