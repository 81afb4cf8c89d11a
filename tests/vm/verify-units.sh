#!/bin/bash
# `systemd-analyze verify` of every unit in units/ and `systemd-analyze security --offline=true`
# of every service, against a scratch root that holds the binary at /usr/bin/icsmail (verify
# checks that ExecStart= exists), the host's own system units and units/ in /etc/systemd/system.
# Prints one PASS/FAIL line per unit. Usage: verify-units.sh [ICSMAIL_BIN]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN=${1:-$ROOT/target/release/icsmail}
V=$(mktemp -d /tmp/icsmail-verify.XXXXXX)
trap 'rm -rf "$V"' EXIT

mkdir -p "$V/usr/bin" "$V/bin" "$V/usr/lib/systemd" "$V/etc/systemd/system"
cp "$BIN" "$V/usr/bin/icsmail"
cp /bin/kill "$V/bin/kill"   # ExecReload= (procps)
cp -a /usr/lib/systemd/system "$V/usr/lib/systemd/"
cp "$ROOT"/units/*.service "$ROOT"/units/*.socket "$ROOT"/units/*.timer "$V/etc/systemd/system/"

cd "$V/etc/systemd/system"
for unit in *; do
  if out=$(systemd-analyze verify --root="$V" "$unit" 2>&1) && [ -z "$out" ]; then
    echo "PASS: systemd-analyze verify $unit"
  else
    echo "FAIL: systemd-analyze verify $unit: $(tr '\n' ' ' <<<"$out")"
  fi
done
for unit in *.service; do
  line=$(systemd-analyze security --offline=true --root="$V" "$unit" 2>&1 | grep 'Overall exposure level')
  score=$(sed -E 's/.*: ([0-9.]+) ([A-Z]+).*/\1 \2/' <<<"$line")
  case "${score#* }" in
    PERFECT|SAFE|OK) echo "PASS: systemd-analyze security --offline=true $unit: $score" ;;
    *) echo "FAIL: systemd-analyze security --offline=true $unit: ${score:-$line} (want OK or better)" ;;
  esac
done
