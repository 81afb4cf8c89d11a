#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, cargo-fuzz + libFuzzer) and runs each for a while, from its
# seeds (fuzz/seeds/<target>/) and the corpus earlier runs grew (fuzz/corpus/<target>/, not
# committed), two at a time on two cores. Prints one line per target: executions per second,
# coverage (libFuzzer's `cov` edges and `ft` features), corpus size, peak RSS, findings.
# A finding (crash, hang, out-of-memory) is kept in fuzz/artifacts/<target>/ and the run
# fails; once fixed, the input goes into fuzz/regressions/<target>/, which `cargo test`
# replays (src/fuzzing/replay.rs).
#
# Usage: bench/reliability/fuzz.sh [SECONDS_PER_TARGET [TARGET[:SECONDS]...]]
#   (default 1800 s, every target; TARGET:SECONDS gives that target its own time, for topping
#   up a target whose earlier runs were shorter)
#   FUZZ_JOBS=n     targets run at once (default 2)
#   FUZZ_LOG_DIR=d  where the per-target logs go (default bench/results/fuzz-<time>)
# The short run of tests/run.sh is `bench/reliability/fuzz.sh 6`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECONDS_PER=${1:-1800}
shift || true
cd "$ROOT/fuzz"
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck source=/dev/null
  . "$HOME/.cargo/env"
fi
# cargo-fuzz passes nightly flags (-Zsanitizer, -Cpasses=sancov-module); the machine has the
# stable toolchain only, whose compiler takes them with RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1
TARGETS=()
declare -A TIME_OF
for arg in "$@"; do
  TARGETS+=("${arg%%:*}")
  if [[ $arg == *:* ]]; then TIME_OF[${arg%%:*}]=${arg#*:}; fi
done
if ((${#TARGETS[@]} == 0)); then
  mapfile -t TARGETS < <(cargo fuzz list)
fi
seconds_of() { echo "${TIME_OF[$1]:-$SECONDS_PER}"; }
# A time that is not a whole number of seconds would reach libFuzzer as -max_total_time=junk,
# which it ignores, and the run would never end.
for t in "$SECONDS_PER" "${TIME_OF[@]}"; do
  [[ $t =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: '$t' is not a number of seconds (usage: fuzz.sh [SECONDS [TARGET[:SECONDS]...]])" >&2; exit 2; }
done
JOBS=${FUZZ_JOBS:-2}
LOGS=${FUZZ_LOG_DIR:-$ROOT/bench/results/fuzz-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$LOGS"

echo "fuzz.sh: building ${#TARGETS[@]} targets (release, debug assertions, AddressSanitizer)"
if (($# == 0)); then
  cargo fuzz build --debug-assertions
else
  for target in "${TARGETS[@]}"; do cargo fuzz build --debug-assertions "$target"; done
fi

run_one() {
  local target=$1 log="$LOGS/$1.log"
  mkdir -p "corpus/$target" "artifacts/$target"
  local dict=()
  [ -f "dicts/$target.dict" ] && dict=("-dict=dicts/$target.dict")
  local extra=()
  # The mime target also starts from the mail-parser crate's test messages, when cargo has
  # its sources (it is a dependency): several hundred real and broken messages.
  if [ "$target" = mime ]; then
    local eml
    for eml in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/mail-parser-*/resources/eml; do
      [ -d "$eml" ] && extra+=("$eml"/*/)
    done
  fi
  # -rss_limit_mb: memory that grows with the input is a finding; -timeout: so is a hang.
  cargo fuzz run --debug-assertions "$target" "corpus/$target" "seeds/$target" \
      "${extra[@]}" -- -max_total_time="$(seconds_of "$target")" -print_final_stats=1 \
      -rss_limit_mb=2048 -timeout=10 -max_len=65536 -artifact_prefix="artifacts/$target/" \
      "${dict[@]}" >"$log" 2>&1
}

failed=0
running=0
for target in "${TARGETS[@]}"; do
  run_one "$target" &
  running=$((running + 1))
  if ((running >= JOBS)); then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done

printf '%-18s %8s %10s %7s %7s %7s %7s %s\n' target seconds execs/s cov ft corpus rss_mb findings
for target in "${TARGETS[@]}"; do
  log="$LOGS/$target.log"
  # (A target whose build or start failed has no status line: its row shows `?`.)
  status=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$status")
  execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1 || true)
  findings=$(find "artifacts/$target" -type f | wc -l)
  if [ -z "$status" ]; then
    failed=1
    echo "  $target: did not run (log: $log):"
    grep -E '^error' "$log" | head -3 | sed 's/^/    /' || true
  fi
  printf '%-18s %8s %10s %7s %7s %7s %7s %s\n' "$target" "$(seconds_of "$target")" "${execs:-?}" \
    "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$findings"
  if ((findings > 0)); then
    failed=1
    # The artifact's name says its kind: crash-, leak-, oom-, slow-unit- or timeout-.
    echo "  $target: findings in fuzz/artifacts/$target/ (log: $log):"
    find "artifacts/$target" -type f -printf '    %f\n'
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Slowest unit' "$log" | head -5 | sed 's/^/    /' || true
  fi
done
exit "$failed"
