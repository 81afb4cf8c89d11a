#!/usr/bin/env bash
# Checks of the Nix side that run without building anything (docs/nixos.md, "Evaluating"):
#  1. `nix-instantiate --parse` of every .nix file of the repository (always; CI does this);
#  2. when the partial nixpkgs of ../shared/tools/nixos-eval exists ($NIXPKGS, default
#     /tmp/nixos-eval/nixpkgs, made by its setup.sh):
#     - the module enabled with defaults, and with example.nix (every option set);
#     - the build-time check of both: the module's own check command (the runCommand script
#       that makes /etc/icsmail/config.json), run here with the real binary on the generated
#       JSON; then the full `icsmail check-config` on it (the example's secret and certificate
#       paths swapped for scratch files);
#     - every bad value of issue 11 (and every check the module used to repeat in Nix): the
#       module evaluates without a failed assertion, and its build check fails with the
#       program's line naming the key;
#     - the assertions Nix alone can make (secrets in the store, the webmail on loopback);
#     - the webmail: the generated Roundcube config.inc.php run through PHP (IMAP/submission,
#       limits, folders, short names, LDAP books), PHP-FPM's upload limits and nginx's TLS;
#     - `nix flake check --no-build` of flake.nix (packages, module, appliance, VM tests).
# Prints PASS/FAIL/SKIP lines and `N passed, M failed, K skipped`; exit 1 when anything failed.
# The steps that run the binary print SKIP when it is missing; REQUIRE_BIN=1 (tests/run.sh)
# makes a missing binary a failure.
# Env: ICSMAIL_BIN (default target/release/icsmail), NIXPKGS, NIXOS_EVAL (the tool's folder).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
NIXPKGS=${NIXPKGS:-/tmp/nixos-eval/nixpkgs}
NIXOS_EVAL=${NIXOS_EVAL:-$ROOT/../shared/tools/nixos-eval}
BIN=${ICSMAIL_BIN:-$ROOT/target/release/icsmail}
pass=0; fail=0; skip=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; fail=$((fail + 1)); }
sk() { echo "SKIP: $*"; skip=$((skip + 1)); }
summary() { echo "$pass passed, $fail failed, $skip skipped"; [ "$fail" -eq 0 ]; }
T=$(mktemp -d /tmp/icsmail-nixcheck.XXXXXX)
trap 'rm -rf "$T"' EXIT

# have_bin WHAT: true when the binary exists; otherwise a SKIP line (a FAIL with REQUIRE_BIN=1)
have_bin() {
  [ -x "$BIN" ] && return 0
  if [ "${REQUIRE_BIN:-0}" = 1 ]; then ko "$1: no icsmail binary at $BIN"
  else sk "$1: no icsmail binary at $BIN (cargo build --release first)"; fi
  return 1
}

if ! command -v nix-instantiate >/dev/null; then
  echo "installing nix-bin (nix-instantiate)"
  SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  "${SUDO[@]}" apt-get update -q >/dev/null
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nix-bin >/dev/null \
    || { ko "cannot install nix-bin"; summary; exit 1; }
fi

# 1. syntax of every .nix file
while IFS= read -r -d '' f; do
  if out=$(nix-instantiate --parse "$f" 2>&1 >/dev/null); then ok "nix-instantiate --parse $f"
  else ko "nix-instantiate --parse $f: $out"; fi
done < <(find . -name '*.nix' -not -path './target/*' -not -path './.git/*' -print0 | sort -z)

if [ ! -d "$NIXPKGS/nixos" ] || [ ! -x "$NIXOS_EVAL/eval-module.sh" ]; then
  sk "module evaluation: no partial nixpkgs at $NIXPKGS (run $NIXOS_EVAL/setup.sh with the snapshots)"
  summary; exit
fi
export NIXPKGS

# generated NAME [EXTRA.nix]: what the module generates (nixos-module/eval/generated.nix) as
# $T/NAME.generated.json; false when the evaluation fails (its error in $T/NAME.eval.txt)
generated() {
  local extra=()
  [ -n "${2:-}" ] && extra=(--arg extra "$(cd "$(dirname "$2")" && pwd)/$(basename "$2")")
  nix-instantiate --eval --strict --json nixos-module/eval/generated.nix \
    --arg nixpkgs "$NIXPKGS" "${extra[@]}" > "$T/$1.generated.json" 2> "$T/$1.eval.txt"
}

field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$T/$1.generated.json" "$2"; }

# build_check NAME: runs the module's build-time check command (the runCommand script that
# makes the checked config.json) with the real binary in place of the package's store path and
# the generated JSON in place of the unchecked store file. Output in $T/NAME.check.txt, the
# produced file in $T/NAME.out; returns the command's exit status.
build_check() {
  if ! python3 - "$T/$1" "$BIN" <<'PY'
import json, sys
base, binary = sys.argv[1], sys.argv[2]
g = json.load(open(f"{base}.generated.json"))
open(f"{base}.json", "w").write(g["configText"])
cmd = g["checkCommand"].replace(g["icsmail"], binary).replace(g["uncheckedConfig"], f"{base}.json")
assert "/nix/store/" not in cmd, f"the check command names another store path: {cmd}"
assert "check-config --static" in cmd, f"the check command does not run check-config --static: {cmd}"
open(f"{base}.sh", "w").write(cmd)
PY
  then echo "cannot prepare the check command" > "$T/$1.check.txt"; return 2; fi
  # the stdenv builder runs a runCommand script with `set -eu -o pipefail`
  out="$T/$1.out" bash -euo pipefail "$T/$1.sh" > "$T/$1.check.txt" 2>&1
}

# good_config NAME WHAT [EXTRA.nix]: evaluates, runs the build check, compares its output file
good_config() {
  if ! generated "$1" "${3:-}"; then ko "$2: evaluation: $(tail -3 "$T/$1.eval.txt")"; return 1; fi
  if [ "$(field "$1" etcSource)" = "$(field "$1" configFile)" ]; then
    ok "$2: /etc/icsmail/config.json is the build-time check's output"
  else ko "$2: /etc/icsmail/config.json is not the checked file"; fi
  have_bin "$2: build-time check" || return 0
  if build_check "$1" && cmp -s "$T/$1.out" "$T/$1.json"; then
    ok "$2: build-time check (check-config --static) passes and writes the JSON: $(head -1 "$T/$1.check.txt")"
  else
    ko "$2: build-time check: $(cat "$T/$1.check.txt")"
  fi
}

# 2a. defaults
if "$NIXOS_EVAL/eval-module.sh" nixos-module > "$T/defaults.txt" 2>&1; then
  ok "module enabled with defaults evaluates (assertions pass, toplevel evaluates)"
else
  ko "module with defaults: $(tail -5 "$T/defaults.txt")"
fi
good_config defaults "defaults"
if have_bin "full check-config on the defaults' config.json" && [ -s "$T/defaults.json" ]; then
  if out=$("$BIN" check-config --config "$T/defaults.json" 2>&1); then ok "full check-config accepts the defaults' config.json"
  else ko "full check-config on the defaults' config.json: $out"; fi
fi

# 2a'. the storage move: its unit runs `icsmail storage-move` at activation, and the activation
# script gives the units the tree in force while it differs from storage.path (run here on a
# scratch state dir and /run)
if [ -s "$T/defaults.generated.json" ] && python3 - "$T" <<'PY'
import json, os, subprocess, sys
t = sys.argv[1]
g = json.load(open(f"{t}/defaults.generated.json"))["storageMove"]
assert any("storage-move --config" in e for e in g["exec"]), g["exec"]
assert "multi-user.target" in g["wantedBy"], g["wantedBy"]
script = (g["activation"].replace("/var/lib/icsmail/mail-root", f"{t}/state/mail-root")
          .replace("/run/systemd/system", f"{t}/run"))
os.makedirs(f"{t}/state", exist_ok=True)
dropin = f"{t}/run/icsmail-smtpd.service.d/50-icsmail-store-in-force.conf"
os.symlink("/srv/old-mail", f"{t}/state/mail-root")
subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True)
text = open(dropin).read()
assert text == "[Service]\nReadWritePaths=-/srv/old-mail\n", text
os.remove(f"{t}/state/mail-root")
os.symlink("/var/lib/icsmail/mail", f"{t}/state/mail-root")
subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True)
assert not os.path.exists(dropin), "the drop-in outlived the move"
PY
then ok "storage move: the unit runs storage-move at activation; the tree in force stays writable until the switch"
else ko "storage move: unit or activation script (see above)"; fi

# 2a'''. the admin service: the bus policy and activation files reach D-Bus, the unit runs
# admind, the admin group exists
if [ -s "$T/defaults.generated.json" ] && python3 - "$T" <<'PY'
import json, sys
g = json.load(open(f"{sys.argv[1]}/defaults.generated.json"))["admin"]
assert "icsmail-dbus" in g["dbusPackages"], g["dbusPackages"]
assert any(e.endswith("/bin/icsmail admind --config /etc/icsmail/config.json") for e in g["exec"]), g["exec"]
assert "icsmail-admin" in g["groups"], g["groups"]
PY
then ok "admin service: services.dbus.packages has its policy and activation files, the unit runs admind, the group icsmail-admin exists"
else ko "admin service: D-Bus package, unit or group (see above)"; fi

# 2a''. polkit: with security.polkit.enable the group's rule is in polkit's rules (the action
# file comes with environment.systemPackages); without it, nothing is added
echo '{ security.polkit.enable = true; }' > "$T/polkit-on.nix"
if generated polkit "$T/polkit-on.nix" && [ "$(field polkit polkitRules | grep -c 'org.icsmail.Mail1.manage')" = 1 ] \
   && ! field defaults polkitRules | grep -q icsmail; then
  ok "polkit: the icsmail-admin rule is added where polkit is enabled, and only there"
else ko "polkit rules: $(tail -3 "$T/polkit.eval.txt")"; fi

# 2b. example.nix (every option)
if EXTRA_CONFIG=nixos-module/eval/example-with-stub-fixes.nix "$NIXOS_EVAL/eval-module.sh" nixos-module > "$T/example.txt" 2>&1; then
  ok "module with example.nix (every option set) evaluates"
else
  ko "module with example.nix: $(tail -5 "$T/example.txt")"
fi
good_config example "example.nix" nixos-module/eval/example-with-stub-fixes.nix
if have_bin "full check-config on example.nix's config.json" && [ -s "$T/example.json" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=mail.example.org \
    -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
  printf x | "$BIN" hash-password > "$T/alice.hash"; echo secret > "$T/relay"
  python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
c = json.load(open(f"{t}/example.json"))
for k in ("smtp", "access"):
    c[k]["certificate"] = {"certFile": f"{t}/cert.pem", "keyFile": f"{t}/key.pem"}
c["accounts"]["alice@example.org"]["hashedPasswordFile"] = f"{t}/alice.hash"
c["relay"]["auth"]["passwordFile"] = f"{t}/relay"
json.dump(c, open(f"{t}/example-local.json", "w"))
PY
  if out=$("$BIN" check-config --config "$T/example-local.json" 2>&1); then ok "full check-config accepts example.nix's config.json"
  else ko "full check-config on example.nix's config.json: $out"; fi
fi
for want in "ListenStream=192.0.2.10:25" "BindToDevice=eth0" "BindToDevice=eth1" \
            "OnCalendar=\*-\*-\* 0,3,6,9,12,15,18,21:00:00" "firewall per-interface allowedTCPPorts: {\"eth0\":\[25,465,587\],\"eth1\":\[110,143,389,636,993,995\]}" "FileDescriptorName=ldap"; do
  if grep -q "$want" "$T/example.txt"; then ok "example.nix generates: $want"
  else ko "example.nix does not generate: $want"; fi
done

# every (user-facing) option of services.icsMail is set by example.nix
cat > "$T/coverage.nix" <<NIX
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
  opts = builtins.filter (o: !(o.internal or false)) (lib.collect lib.isOption eval.options.services.icsMail);
  unset = builtins.filter (o: !(builtins.any (d: lib.hasSuffix "/example.nix" d.file) o.definitionsWithLocations)) opts;
in "\${toString (builtins.length opts)} options; not set by example.nix: \${builtins.toJSON (map (o: lib.showOption o.loc) unset)}"
NIX
if out=$(nix-instantiate --eval "$T/coverage.nix" 2>&1) && [[ $out == *"not set by example.nix: []"* ]]; then
  ok "example.nix sets every option (${out//\"/})"
else
  ko "example.nix coverage: $out"
fi

# 2c. one validator: each bad value evaluates (no Nix assertion stands in for the program's
# check) and the build-time check fails with the program's line naming the key.
# Entries: WHAT|KEY|settings (Nix, inside services.icsMail; BASE is a separate definition)
BASE='{ services.icsMail.domains = [ "example.org" ]; }'
HASH='$6$exampleSalt0123$7DF042LlmY/fhfOJNYh4iU8and9f7Qr22vXwvbTWR7vr2TbD6PNODEgjEcIpGoHngQyseVK2VvponXtC.T2tv/'
BAD_VALUES=(
  # issue 11's list
  'domain|domains[1]|domains = [ "exa mple.org" ];'
  'heloName|heloName|heloName = "mail_server!";'
  'changeSender.address|relay.changeSender.address|relay.changeSender = { enable = true; address = "nobody"; };'
  'DKIM selector|dkim.selector|dkim.selector = "sel ector";'
  'DNSBL zone|spam.dnsbl[0]|spam.dnsbl = [ "zen spamhaus org" ];'
  'whitelist CIDR|lists.whitelist[0]|lists.whitelist = [ "10.0.0.0/33" ];'
  'whitelist CIDR with host bits|lists.whitelist[0]|lists.whitelist = [ "10.0.0.1/24" ];'
  'nameserver|dns.nameservers[0]|dns.nameservers = [ "8.8.8" ];'
  'hashedPassword = "plaintext"|accounts.alice@example.org.hashedPassword|accounts."alice@example.org".hashedPassword = "plaintext";'
  "alias equal to another account|accounts.bob@example.org|accounts.\"alice@example.org\" = { hashedPassword = \"$HASH\"; aliases = [ \"bob@example.org\" ]; }; accounts.\"bob@example.org\".hashedPassword = \"$HASH\";"
  'INBOX in defaultFolders|storage.defaultFolders[0].name|storage.defaultFolders = [ { name = "INBOX"; } ];'
  'repeated specialUse|storage.defaultFolders[1].specialUse|storage.defaultFolders = [ { name = "Sent"; specialUse = "sent"; } { name = "Outbox"; specialUse = "sent"; } ];'
  'greylist.ignoreSeconds = 20000, awaitHours unset|spam.greylist.ignoreSeconds|spam.greylist.ignoreSeconds = 20000;'
  'queue.delayMin = 400, delayMax unset|queue.delayMin|queue.delayMin = 400;'
  # what the module's own assertions and option types used to check
  'tls.mode without certificates|smtp.certificate|tls.mode = "required";'
  'smtps without certificate|smtp.smtps.enable|smtp.smtps.enable = true;'
  'implicitTls without certificate|access.implicitTls.enable|access.implicitTls.enable = true;'
  'relay.auth without passwordFile|relay.auth.passwordFile|relay = { host = "smart.example.org"; auth = { enable = true; user = "u"; }; };'
  'relay.smtps without host|relay.smtps|relay.smtps = true;'
  'kaspersky without icapUrl|antivirus.kaspersky.icapUrl|antivirus.kaspersky.enable = true;'
  'addressBook without baseDn|addressBook.baseDn|addressBook.enable = true;'
  'delayMin > delayMax|queue.delayMin|queue = { delayMin = 300; delayMax = 200; };'
  'defaultAuthDomain outside domains|defaultAuthDomain|defaultAuthDomain = "example.com";'
  "account outside domains|accounts.bob@example.com|accounts.\"bob@example.com\".hashedPassword = \"$HASH\";"
  'account without password|accounts.alice@example.org|accounts."alice@example.org".aliases = [ ];'
  'port clash|imap.port|imap.port = 25;'
  'dhKeyLength 1024|tls.dhKeyLength|tls.dhKeyLength = 1024;'
  'icapUrl not icap://|dlp.icapUrl|dlp = { enable = true; icapUrl = "http://dlp.example.org/"; };'
  'icapUrl with port 0|antivirus.kaspersky.icapUrl|antivirus.kaspersky = { enable = true; icapUrl = "icap://127.0.0.1:0/av"; };'
  'clamd tcp:// without a port|antivirus.clamav.socket|antivirus.clamav = { enable = true; socket = "tcp://127.0.0.1"; };'
  'maxMessageSize too small|smtp.maxMessageSize|smtp.maxMessageSize = 100;'
  "quota 0|accounts.alice@example.org.quota|accounts.\"alice@example.org\" = { hashedPassword = \"$HASH\"; quota = 0; };"
  'dnsblUnreachable unknown|spam.dnsblUnreachable|spam.dnsblUnreachable = "sometimes";'
  'LDAP port clash|addressBook.port|addressBook = { enable = true; baseDn = "dc=example,dc=org"; port = 143; };'
  # issue 12: what this version does not implement refuses, naming the key (none left since
  # the address book, issue 16)
)
i=0
for entry in "${BAD_VALUES[@]}"; do
  IFS='|' read -r what key nix <<<"$entry"
  i=$((i + 1)); name="bad$i"
  printf '{ imports = [ %s ]; services.icsMail = { %s }; }\n' "$BASE" "$nix" > "$T/$name.nix"
  if ! generated "$name" "$T/$name.nix"; then ko "$what: evaluation failed: $(tail -3 "$T/$name.eval.txt")"; continue; fi
  failed=$(field "$name" failedAssertions)
  [ "$failed" = "[]" ] || { ko "$what: a Nix assertion fired ($failed): the program is the validator"; continue; }
  have_bin "$what: build-time check" || continue
  if build_check "$name"; then ko "$what: the build-time check accepted it"
  elif line=$(grep -F -m1 "$key: " "$T/$name.check.txt") && [[ $line == "$key: "* ]]; then
    ok "$what: the build-time check fails: $line"
  else ko "$what: the build-time check failed without a '$key:' line: $(cat "$T/$name.check.txt")"; fi
done

# 2d. the assertions Nix alone can make
assertion_case() { # WHAT SETTINGS WANT
  printf '{ imports = [ %s ]; services.icsMail = { %s }; }\n' "$BASE" "$2" > "$T/assert.nix"
  generated assert "$T/assert.nix"
  if grep -F -q "$3" "$T/assert.generated.json"; then ok "assertion fires: $1"
  else ko "assertion missing: $1: $(cat "$T/assert.generated.json" "$T/assert.eval.txt")"; fi
}
STORE=/nix/store/00000000000000000000000000000000
assertion_case "hashedPasswordFile in the Nix store" \
  "accounts.\"alice@example.org\".hashedPasswordFile = \"$STORE-alice.hash\";" \
  "services.icsMail.accounts.\\\"alice@example.org\\\".hashedPasswordFile = \\\"$STORE-alice.hash\\\" is in the Nix store"
assertion_case "relay.auth.passwordFile in the Nix store" \
  "relay.auth.passwordFile = \"$STORE-relay\";" "services.icsMail.relay.auth.passwordFile = \\\"$STORE-relay\\\" is in the Nix store"
assertion_case "certificate keyFile in the Nix store" \
  "smtp.certificate = { certFile = \"$STORE-cert.pem\"; keyFile = \"$STORE-key.pem\"; };" \
  "services.icsMail.smtp.certificate.keyFile = \\\"$STORE-key.pem\\\" is in the Nix store"
assertion_case "dkim.keyDirectory in the Nix store" \
  "dkim.keyDirectory = \"$STORE-dkim\";" "services.icsMail.dkim.keyDirectory = \\\"$STORE-dkim\\\" is in the Nix store"
assertion_case "webmail without loopback listeners" \
  'webmail.enable = true; access.interfaces = [ "eth0" ];' 'Roundcube talks to IMAP and submission on localhost'
# 2d'. the webmail: Roundcube's config.inc.php as PHP reads it (Debian's php and Roundcube's
# rcube_charset, where tests/install.sh put them), PHP-FPM's upload limits, nginx's TLS
webmail_case() { # NAME SETTINGS PYTHON-CHECK (of w = generated webmail, c = PHP's $config)
  printf '{ imports = [ %s ]; services.icsMail = { webmail.enable = true; access.interfaces = [ "lo" ]; smtp.interfaces = [ "lo" ]; %s }; }\n' "$BASE" "$2" > "$T/webmail.nix"
  if ! generated webmail "$T/webmail.nix"; then ko "webmail $1: $(tail -5 "$T/webmail.eval.txt")"; return; fi
  if ! command -v php >/dev/null || [ ! -r /usr/share/roundcube/program/lib/Roundcube/rcube_charset.php ]; then
    sk "webmail $1: no php / Debian roundcube (tests/install.sh)"; return
  fi
  if out=$(python3 - "$T/webmail.generated.json" "$3" 2>&1 <<'PY'
import json, subprocess, sys
w = json.load(open(sys.argv[1]))["webmail"]
php = w["configPhp"].replace("file_get_contents('/var/lib/roundcube/des_key')", "'k'")
code = ("require '/usr/share/roundcube/program/lib/Roundcube/rcube_charset.php';"
        "$config = []; eval('?>' . stream_get_contents(STDIN)); echo json_encode($config);")
c = json.loads(subprocess.run(["php", "-r", code], input=php, capture_output=True, text=True,
                              check=True).stdout)
assert eval("(" + sys.argv[2] + ")"), (sys.argv[2], {k: c.get(k) for k in c if "mbox" in k or "host" in k or "size" in k}, w["phpOptions"], w["tls"])
PY
  ); then ok "webmail $1"
  else ko "webmail $1: $(tail -3 <<<"$out")"; fi
}
webmail_case "wiring: IMAP/submission on localhost with the user's login, limits, folders, short names, LDAP" \
  'defaultAuthDomain = "example.org"; smtp.maxMessageSize = 1048576; imap.port = 1143; smtp.submissionPort = 1587;
   addressBook = { enable = true; port = 3389; baseDn = "dc=example,dc=org; dc=example,dc=net"; };
   storage.defaultFolders = [ { name = "Entwürfe"; specialUse = "drafts"; } { name = "Gesendet"; specialUse = "sent"; } { name = "Archiv"; specialUse = "archive"; } ];' \
  'c["imap_host"] == "localhost:1143" and c["smtp_host"] == "localhost:1587" and c["smtp_user"] == "%u" and c["smtp_pass"] == "%p"
   and c["max_message_size"] == 1048576 * 133 // 137 and w["phpOptions"].rstrip().endswith("upload_max_filesize = 1048576\npost_max_size = 1048576")
   and c["drafts_mbox"] == "Entw&APw-rfe" and c["sent_mbox"] == "Gesendet" and c["trash_mbox"] == "" and c["junk_mbox"] == ""
   and c["username_domain"] == "example.org"
   and [b["hosts"] for b in c["ldap_public"].values()] == [["localhost:3389"]] * 2
   and [b["base_dn"] for b in c["ldap_public"].values()] == ["dc=example,dc=org", "dc=example,dc=net"]
   and c["autocomplete_addressbooks"] == ["sql", "icsmail0", "icsmail1"]
   and w["tls"] == {"enableACME": False, "forceSSL": False, "sslCertificate": None, "sslCertificateKey": None}'
webmail_case "without the address book (webmail.addressBook = false); default folders" \
  'addressBook = { enable = true; baseDn = "dc=example,dc=org"; }; webmail.addressBook = false;' \
  '"ldap_public" not in c and "username_domain" not in c
   and (c["drafts_mbox"], c["sent_mbox"], c["trash_mbox"], c["junk_mbox"]) == ("Drafts", "Sent", "Trash", "Junk")'
webmail_case "nginx TLS with the mail certificate; tls.mode required: STARTTLS" \
  'tls.mode = "required"; access.certificate = { certFile = "/run/c/imap.crt"; keyFile = "/run/c/imap.key"; };
   smtp.certificate = { certFile = "/run/c/smtp.crt"; keyFile = "/run/c/smtp.key"; };' \
  'w["tls"] == {"enableACME": False, "forceSSL": True, "sslCertificate": "/run/c/imap.crt", "sslCertificateKey": "/run/c/imap.key"}
   and c["imap_host"].startswith("tls://localhost:") and c["smtp_host"].startswith("tls://localhost:")'
webmail_case "nginx TLS from ACME (webmail.acme)" \
  'webmail.acme = true; smtp.certificate = { certFile = "/run/c/smtp.crt"; keyFile = "/run/c/smtp.key"; };' \
  'w["tls"]["enableACME"] is True and w["tls"]["forceSSL"] is True'
# a Nix path value is a type error (it would be copied into the store)
echo secret > "$T/secret"
printf '{ imports = [ %s ]; services.icsMail.accounts."alice@example.org".hashedPasswordFile = %s; }\n' "$BASE" "$T/secret" > "$T/path.nix"
if ! generated path "$T/path.nix" && grep -q "absolute path (a string: the file stays out of the Nix store)" "$T/path.eval.txt"; then
  ok "a Nix path value for hashedPasswordFile is refused (type error)"
else
  ko "a Nix path value for hashedPasswordFile: $(cat "$T/path.generated.json" "$T/path.eval.txt" | tail -5)"
fi

# 2e. the flake (copied: a flake in a git work tree sees only tracked files)
mkdir -p "$T/flake"; cp -r flake.nix Cargo.toml Cargo.lock src units nixos-module "$T/flake/"
[ -f flake.lock ] && cp flake.lock "$T/flake/"
if out=$(NIX_CONFIG="experimental-features = nix-command flakes" nix flake check --no-build \
      --override-input nixpkgs "path:$NIXPKGS" --no-write-lock-file "path:$T/flake" 2>&1); then
  ok "nix flake check --no-build (packages, nixosModules, nixosConfigurations.appliance, checks)"
else
  ko "nix flake check: $(grep -v 'not writing\|Added input\|    .path' <<<"$out" | tail -8)"
fi
# flake_build_check NAME ATTR WHAT: the build-time check of a flake configuration's JSON
flake_build_check() {
  local g
  if ! g=$("${FLAKE_NIX[@]}" --json --apply 'g: { inherit (g) configText checkCommand icsmail uncheckedConfig; }' "path:$T/flake#$2" 2>&1); then
    ko "$3: evaluating its config.json: $(tail -3 <<<"$g")"; return
  fi
  tail -1 <<<"$g" > "$T/$1.generated.json"
  have_bin "$3: build-time check" || return 0
  if build_check "$1"; then ok "$3: the build-time check passes its config.json"
  else ko "$3: the build-time check: $(cat "$T/$1.check.txt")"; fi
}
# `nix flake check --no-build` does not force the VM tests' node systems here (the stub's test
# driver never reads them); force each node's toplevel, so their assertions are evaluated too
FLAKE_NIX=(env NIX_CONFIG="experimental-features = nix-command flakes" nix eval --override-input nixpkgs "path:$NIXPKGS" --no-write-lock-file)
if tests=$("${FLAKE_NIX[@]}" --json --apply 'cs: builtins.filter (n: cs.${n} ? nodes) (builtins.attrNames cs)' "path:$T/flake#checks.x86_64-linux" 2>"$T/tests.err"); then
  for t in $(python3 -c 'import json,sys; print(" ".join(json.loads(sys.argv[1])))' "$tests"); do
    if out=$("${FLAKE_NIX[@]}" --json --apply 'ns: builtins.mapAttrs (_: n: n.system.build.toplevel.drvPath) ns' "path:$T/flake#checks.x86_64-linux.$t.nodes" 2>&1); then
      ok "VM test $t: every node's system evaluates (assertions pass): $(python3 -c 'import json,sys; print(" ".join(sorted(json.loads(sys.argv[1].splitlines()[-1]))))' "$out")"
      flake_build_check "$t" "checks.x86_64-linux.$t.nodes.server.services.icsMail.generated" "VM test $t's server"
    else
      ko "VM test $t: $(grep -v 'Added input\|    .path' <<<"$out" | tail -4)"
    fi
  done
else
  ko "listing the flake's VM tests: $(tail -4 "$T/tests.err")"
fi
flake_build_check appliance "nixosConfigurations.appliance.config.services.icsMail.generated" "the appliance"

summary
