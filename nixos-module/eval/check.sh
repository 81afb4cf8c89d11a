#!/usr/bin/env bash
# Checks of the Nix side that run without building anything (docs/nixos.md, "Evaluating"):
#  1. `nix-instantiate --parse` of every .nix file of the repository (always; CI does this);
#  2. when the partial nixpkgs of ../shared/tools/nixos-eval exists ($NIXPKGS, default
#     /tmp/nixos-eval/nixpkgs, made by its setup.sh):
#     - the module enabled with defaults, and with example.nix (every option set);
#     - the generated /etc/icsmail/config.json of both, validated by `icsmail check-config`
#       (the example's secret and certificate paths swapped for scratch files);
#     - the module's assertions: a broken configuration must fail with the expected messages;
#     - `nix flake check --no-build` of flake.nix (packages, module, appliance, VM tests).
# Prints PASS/FAIL/SKIP lines and `N passed, M failed`; exit 1 when anything failed.
# Env: ICSMAIL_BIN (default target/release/icsmail), NIXPKGS, NIXOS_EVAL (the tool's folder).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
NIXPKGS=${NIXPKGS:-/tmp/nixos-eval/nixpkgs}
NIXOS_EVAL=${NIXOS_EVAL:-$ROOT/../shared/tools/nixos-eval}
BIN=${ICSMAIL_BIN:-$ROOT/target/release/icsmail}
pass=0; fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; fail=$((fail + 1)); }
T=$(mktemp -d /tmp/icsmail-nixcheck.XXXXXX)
trap 'rm -rf "$T"' EXIT

if ! command -v nix-instantiate >/dev/null; then
  echo "installing nix-bin (nix-instantiate)"
  SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nix-bin >/dev/null || { ko "cannot install nix-bin"; exit 1; }
fi

# 1. syntax of every .nix file
while IFS= read -r -d '' f; do
  if out=$(nix-instantiate --parse "$f" 2>&1 >/dev/null); then ok "nix-instantiate --parse $f"
  else ko "nix-instantiate --parse $f: $out"; fi
done < <(find . -name '*.nix' -not -path './target/*' -not -path './.git/*' -print0 | sort -z)

if [ ! -d "$NIXPKGS/nixos" ] || [ ! -x "$NIXOS_EVAL/eval-module.sh" ]; then
  echo "SKIP: module evaluation: no partial nixpkgs at $NIXPKGS (run $NIXOS_EVAL/setup.sh with the snapshots)"
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]; exit
fi
export NIXPKGS

config_json() { sed -n '/^### \/etc\/icsmail\/config.json/{n;p}' "$1"; }

# 2a. defaults
if "$NIXOS_EVAL/eval-module.sh" nixos-module > "$T/defaults.txt" 2>&1; then
  ok "module enabled with defaults evaluates (assertions pass, toplevel evaluates)"
else
  ko "module with defaults: $(tail -5 "$T/defaults.txt")"
fi
config_json "$T/defaults.txt" > "$T/defaults.json"
if [ -x "$BIN" ]; then
  if out=$("$BIN" check-config --config "$T/defaults.json" 2>&1); then ok "check-config accepts the defaults' config.json"
  else ko "check-config on the defaults' config.json: $out"; fi
fi

# 2b. example.nix (every option)
if EXTRA_CONFIG=nixos-module/eval/example-with-stub-fixes.nix "$NIXOS_EVAL/eval-module.sh" nixos-module > "$T/example.txt" 2>&1; then
  ok "module with example.nix (every option set) evaluates"
else
  ko "module with example.nix: $(tail -5 "$T/example.txt")"
fi
config_json "$T/example.txt" > "$T/example.json"
if [ -x "$BIN" ] && [ -s "$T/example.json" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=mail.example.org \
    -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
  printf x | "$BIN" hash-password > "$T/alice.hash"; echo secret > "$T/relay"
  python3 - "$T" <<'EOF'
import json, sys
t = sys.argv[1]
c = json.load(open(f"{t}/example.json"))
for k in ("smtp", "access"):
    c[k]["certificate"] = {"certFile": f"{t}/cert.pem", "keyFile": f"{t}/key.pem"}
c["accounts"]["alice@example.org"]["hashedPasswordFile"] = f"{t}/alice.hash"
c["relay"]["auth"]["passwordFile"] = f"{t}/relay"
json.dump(c, open(f"{t}/example-local.json", "w"))
EOF
  if out=$("$BIN" check-config --config "$T/example-local.json" 2>&1); then ok "check-config accepts example.nix's config.json"
  else ko "check-config on example.nix's config.json: $out"; fi
fi
for want in "ListenStream=192.0.2.10:25" "BindToDevice=eth0" "BindToDevice=eth1" \
            "OnCalendar=\*-\*-\* 0,3,6,9,12,15,18,21:00:00" "firewall per-interface allowedTCPPorts: {\"eth0\":\[25,465,587\],\"eth1\":\[110,143,993,995\]}"; do
  if grep -q "$want" "$T/example.txt"; then ok "example.nix generates: $want"
  else ko "example.nix does not generate: $want"; fi
done

# every option of services.icsMail is set by example.nix
cat > "$T/coverage.nix" <<EOF
let
  lib = import $NIXPKGS/lib;
  pkgs = import $NIXPKGS/pkgs-stub { inherit lib; };
  eval = import $NIXPKGS/nixos/lib/eval-config.nix {
    inherit lib pkgs; system = null;
    modules = [
      { nixpkgs.hostPlatform = "x86_64-linux"; boot.isContainer = true; system.stateVersion = "24.05"; }
      $ROOT/nixos-module/default.nix $ROOT/nixos-module/eval/example-with-stub-fixes.nix
    ];
  };
  opts = lib.collect lib.isOption eval.options.services.icsMail;
  unset = builtins.filter (o: !(builtins.any (d: lib.hasSuffix "/example.nix" d.file) o.definitionsWithLocations)) opts;
in "\${toString (builtins.length opts)} options; not set by example.nix: \${builtins.toJSON (map (o: lib.showOption o.loc) unset)}"
EOF
if out=$(nix-instantiate --eval "$T/coverage.nix" 2>&1) && [[ $out == *"not set by example.nix: []"* ]]; then
  ok "example.nix sets every option (${out//\"/})"
else
  ko "example.nix coverage: $out"
fi

# 2c. assertions
cat > "$T/broken.nix" <<'EOF'
{ services.icsMail = {
    tls.mode = "required"; smtp.smtps.enable = true; access.implicitTls.enable = true;
    relay.auth.enable = true; imap.port = 25; domains = [ "example.org" ];
    accounts."bob@example.com".hashedPassword = "$6$x";
    queue = { delayMin = 300; delayMax = 200; };
  }; }
EOF
EXTRA_CONFIG="$T/broken.nix" "$NIXOS_EVAL/eval-module.sh" nixos-module > "$T/broken.txt" 2>&1
for want in 'tls.mode = \"required\" needs certificates' 'smtp.smtps.enable needs services.icsMail.smtp.certificate' \
            'implicitTls.enable (IMAPS/POP3S) needs services.icsMail.access.certificate' \
            'relay.auth.enable needs services.icsMail.relay.auth.passwordFile' \
            'its domain example.com is not in services.icsMail.domains' 'smtp and imap both use port 25' \
            'queue.delayMin (300) must not be greater than queue.delayMax (200)'; do
  if grep -F -q "$want" "$T/broken.txt"; then ok "assertion fires: $want"
  else ko "assertion missing: $want"; fi
done

# 2d. the flake (copied: a flake in a git work tree sees only tracked files)
mkdir -p "$T/flake"; cp -r flake.nix Cargo.toml Cargo.lock src units nixos-module "$T/flake/"
if out=$(NIX_CONFIG="experimental-features = nix-command flakes" nix flake check --no-build \
      --override-input nixpkgs "path:$NIXPKGS" --no-write-lock-file "path:$T/flake" 2>&1); then
  ok "nix flake check --no-build (packages, nixosModules, nixosConfigurations.appliance, checks)"
else
  ko "nix flake check: $(grep -v 'not writing\|Added input\|    .path' <<<"$out" | tail -8)"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
