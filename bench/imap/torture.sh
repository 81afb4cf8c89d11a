#!/usr/bin/env bash
# The long run of the IMAP concurrency torture test (issue 17): the same test as the suite's
# 20-second tests/integration/test_imap_torture.py, for minutes, against ics-mail (a release
# build) and then against a private Dovecot 2.3 with the same seed, so the checks are checked
# too. See bench/README.md ("IMAP torture, long run").
#
# Environment knobs (defaults in brackets):
#   SECONDS_EACH [600] seconds of random work per server   CLIENTS [16] clients (at least 8)
#   SEED [random] the operations' seed (printed; the interleaving is the machine's)
#   ONLY [both] icsmail | dovecot   NO_BUILD [0] 1 = don't run cargo build --release
#   ICSMAIL_BIN [target/release/icsmail]
#
# Must run as root (the private Dovecot). Listens on 127.0.0.1 only. Needs the test venv
# (tests/install.sh makes it).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ONLY="${ONLY:-both}"
NO_BUILD="${NO_BUILD:-0}"
SECONDS_EACH="${SECONDS_EACH:-600}"
CLIENTS="${CLIENTS:-16}"
SEED="${SEED:-$RANDOM$RANDOM}"
BIN="${ICSMAIL_BIN:-$REPO/target/release/icsmail}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (the private Dovecot needs it)"
# shellcheck source=../../tests/venv.sh
. "$REPO/tests/venv.sh"
[ -x "$TEST_PYTHON" ] || die "no test venv at $TEST_VENV: run tests/install.sh first"
if [ "$NO_BUILD" != 1 ]; then
  (cd "$REPO" && cargo build --release)
fi
[ -x "$BIN" ] || die "$BIN not found (cargo build --release)"

mkdir -p "$REPO/bench/results"
OUT="$REPO/bench/results/imap-torture-$(date +%F-%H%M).txt"
targets=(icsmail dovecot)
[ "$ONLY" = both ] || targets=("$ONLY")
status=0
for target in "${targets[@]}"; do
  log "torture against $target: $CLIENTS clients, ${SECONDS_EACH} s, seed $SEED"
  if (cd "$REPO" && IMAP_TEST_TARGET="$target" ICSMAIL_BIN="$BIN" \
        IMAP_TORTURE_SECONDS="$SECONDS_EACH" IMAP_TORTURE_CLIENTS="$CLIENTS" \
        IMAP_TORTURE_SEED="$SEED" "$TEST_PYTHON" -m pytest -q -s -p no:cacheprovider \
        tests/integration/test_imap_torture.py 2>&1 | tee -a "$OUT.$target"); then
    log "$target: passed"
  else
    log "$target: FAILED"
    status=1
  fi
  { echo "== $target"; grep -E "^IMAP_TORTURE_SEED|^[0-9]+ commands|[0-9]+ (passed|failed)" "$OUT.$target" || true; } >>"$OUT"
  rm -f "$OUT.$target"
done
log "summary: $OUT"
cat "$OUT"
exit $status
