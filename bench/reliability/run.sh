#!/usr/bin/env bash
# Every reliability figure of docs/reliability.md, in one command: the fuzz runs, the soak,
# kill -9 under load, the other faults (disk full, DNS down, a stalled peer, slow-loris) and
# the message-shape limits. Each part prints its own table; their output goes to
# bench/results/reliability-<time>/<part>.log as well. The run fails when any part does.
#
# Usage: bench/reliability/run.sh [PART...]   (default: every part, in this order)
#   PART: fuzz soak kill9 faults shapes
#   FUZZ_SECONDS=s   per fuzz target (default 1800: the issue's 30 minutes)
#   SOAK_SECONDS=s   soak duration (default 1200: 20 minutes)
#   SOAK_CONNECTIONS=n (default 10000)   KILLS=n kills per daemon (default 100)
# Run as root (tmpfs mounts, Postfix, raised fd limits) on an otherwise idle machine: the soak's
# latencies and the shapes' CPU times are skewed by other work. Every part together takes about
# 3 h 30 min of fuzzing (14 targets at 30 min, two at a time) plus about 80 minutes: the soak
# 30 (account setup, ramp, 20 min hold), kill9 20, faults 25 (most of it waiting for the real
# timeouts: the queue's 5 and 10 minutes, POP3's 10), shapes 3.
# Prerequisites: tests/install.sh (the packages and the venv) and cargo-fuzz for the fuzz part.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/reliability"
# shellcheck source=tests/venv.sh
. "$ROOT/tests/venv.sh"

PARTS=("$@")
((${#PARTS[@]} > 0)) || PARTS=(fuzz soak kill9 faults shapes)
for part in "${PARTS[@]}"; do
  case "$part" in
    fuzz | soak | kill9 | faults | shapes) ;;
    *) echo "run.sh: unknown part '$part' (fuzz soak kill9 faults shapes)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root" >&2; exit 2; }
[ -x "$TEST_PYTHON" ] || { echo "run.sh: no $TEST_PYTHON: run tests/install.sh first" >&2; exit 2; }

OUT="$ROOT/bench/results/reliability-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
echo "run.sh: logs in $OUT"
(cd "$ROOT" && cargo build --release --quiet)
export ICSMAIL_BIN="$ROOT/target/release/icsmail"

run_part() {
  local part=$1
  case "$part" in
    fuzz) FUZZ_LOG_DIR="$OUT/fuzz" "$HERE/fuzz.sh" "${FUZZ_SECONDS:-1800}" ;;
    soak)
      "$TEST_PYTHON" "$HERE/soak.py" --duration "${SOAK_SECONDS:-1200}" \
        --connections "${SOAK_CONNECTIONS:-10000}" ;;
    kill9) "$TEST_PYTHON" "$HERE/kill9.py" --kills "${KILLS:-100}" ;;
    faults) "$TEST_PYTHON" "$HERE/faults.py" ;;
    shapes) "$TEST_PYTHON" "$HERE/shapes.py" --dovecot ;;
  esac
}

failed=()
for part in "${PARTS[@]}"; do
  echo "=== $part ($(date -u +%H:%M:%S))"
  if ! run_part "$part" 2>&1 | tee "$OUT/$part.log"; then
    failed+=("$part")
  fi
done
echo "=== done ($(date -u +%H:%M:%S)); logs in $OUT"
if ((${#failed[@]} > 0)); then
  echo "run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
