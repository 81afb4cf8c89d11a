#!/usr/bin/env bash
# The project's test command (Debian 12): installs every package the tests use
# (tests/install.sh), runs each tool once in the mode the tests use it (tests/selfcheck.sh),
# then formatting, lint, unit tests, a release build, the black-box integration tests against
# that build, the Nix checks and a QEMU VM test of the systemd units.
#
# Usage: ./tests/run.sh [--install-only] [extra pytest arguments]   (from any directory)
#   --install-only  install the packages and run the self-check, then stop. Needs no Rust and
#                   no checkout build: this is how a fresh machine's package set is proven
#                   (e.g. in a debootstrapped chroot: README.md, "A fresh machine").
# Env: SKIP_VM=1    leave out the VM test and its host tools (QEMU, mmdebstrap).
#
# The build steps (fmt, clippy, release build) stop the run at their first failure. The test
# stages (import circles, cargo test, integration tests, Nix checks, VM test) all run whatever the others
# gave, and the run ends with one line per stage and a non-zero exit if any failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

INSTALL_ONLY=0
if [ "${1:-}" = --install-only ]; then INSTALL_ONLY=1; shift; fi
VM_FLAG=()
[ "${SKIP_VM:-0}" = 1 ] || VM_FLAG=(--vm)

step() { printf '\n==> %s\n' "$*"; }
now() { date +%s; }
T_START=$(now)
STAGES=()   # "PASS|FAIL  name  duration"
duration() { local s=$(( $(now) - $1 )); printf '%d min %02d s' $((s / 60)) $((s % 60)); }
summary() {
  step "summary (wall time $(duration "$T_START"))"
  printf '  %s\n' "${STAGES[@]}"
}
# build NAME CMD…: a build step; its failure ends the run
build() {
  local name=$1 t; shift; t=$(now)
  step "$name"
  if "$@"; then STAGES+=("PASS  $name  ($(duration "$t"))"); return; fi
  STAGES+=("FAIL  $name  ($(duration "$t"))")
  summary
  echo "run.sh: $name failed; the later stages need it and were not run"
  exit 1
}
# stage NAME CMD…: a test stage; its result is recorded and the run goes on
failed=0
stage() {
  local name=$1 t; shift; t=$(now)
  step "$name"
  if "$@"; then STAGES+=("PASS  $name  ($(duration "$t"))")
  else STAGES+=("FAIL  $name  ($(duration "$t"))"); failed=1; fi
}

# --- system packages, then every tool once -------------------------------------------------
build "install the test packages (tests/install.sh${VM_FLAG[*]:+ ${VM_FLAG[*]}})" bash "$ROOT/tests/install.sh" "${VM_FLAG[@]}"
build "self-check of every tool (tests/selfcheck.sh${VM_FLAG[*]:+ ${VM_FLAG[*]}})" bash "$ROOT/tests/selfcheck.sh" "${VM_FLAG[@]}"
if ((INSTALL_ONLY)); then
  summary
  echo "run.sh: --install-only: packages installed and checked; no test was run"
  exit 0
fi

# --- Rust -----------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "run.sh: cargo not found: install Rust (e.g. with rustup) first"; exit 1; }

build "cargo fmt --check" cargo fmt --check
build "cargo clippy --all-targets -- -D warnings" cargo clippy --all-targets -- -D warnings
stage "no import circles (tests/lint/import_cycles.py)" /usr/bin/python3 "$ROOT/tests/lint/import_cycles.py" "$ROOT/src"
stage "cargo test" cargo test
# libFuzzer on every fuzz target for 6 s each, two at a time (docs/reliability.md; the long runs
# are bench/reliability/fuzz.sh's default). Its own instrumented build, in fuzz/target.
stage "fuzz targets, short run (bench/reliability/fuzz.sh 6)" bash "$ROOT/bench/reliability/fuzz.sh" 6
build "cargo build --release" cargo build --release

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
export ICSMAIL_BIN="$TARGET_DIR/release/icsmail"
[ -x "$ICSMAIL_BIN" ] || { echo "run.sh: no release binary at $ICSMAIL_BIN after cargo build --release"; exit 1; }
export PYTHONDONTWRITEBYTECODE=1
# shellcheck source=tests/venv.sh
. "$ROOT/tests/venv.sh"

# --- integration ----------------------------------------------------------------------------
stage "integration tests (ICSMAIL_BIN=$ICSMAIL_BIN)" \
  "$TEST_PYTHON" -m pytest -v -p no:cacheprovider tests/integration "$@"

# --- packaging: Nix files, then the systemd units in a QEMU VM ------------------------------
# nixos-module/eval/check.sh parses every .nix file, and evaluates the module and the flake
# where ../shared/tools/nixos-eval's partial nixpkgs exists; REQUIRE_BIN=1 turns its steps
# that run the binary from SKIP into FAIL when it is missing. tests/vm/run.sh boots a Debian
# guest with units/ (needs root; ~2 min with its cached base image, ~4 min the first time).
stage "Nix checks (nixos-module/eval/check.sh)" env REQUIRE_BIN=1 bash "$ROOT/nixos-module/eval/check.sh"
if [ "${SKIP_VM:-0}" != 1 ]; then
  VM_SUDO=()
  if [ "$(id -u)" -ne 0 ]; then VM_SUDO=(sudo --preserve-env=ICSMAIL_BIN); fi
  stage "VM test of the systemd units (tests/vm/run.sh)" "${VM_SUDO[@]}" bash "$ROOT/tests/vm/run.sh"
else
  STAGES+=("SKIP  VM test (SKIP_VM=1)")
fi

summary
if ((failed)); then echo "run.sh: some stages failed (above)"; exit 1; fi
echo "run.sh: every stage passed"
