#!/bin/bash
# VM integration test of the systemd units (docs/systemd.md, "The VM test").
#
# Builds a small Debian bookworm guest (mmdebstrap, kernel, mkfs.ext4 -d; no mounts, no loop
# devices) holding the release binary at /usr/bin/icsmail, units/ in /etc/systemd/system (the
# sockets and the queue timer enabled), the `icsmail` user and a test configuration; boots it
# under QEMU (TCG: there is no KVM here) and checks from the host, over forwarded ports, that
# socket activation, delivery, reading back, sd_notify readiness, the dedicated user and the
# queue timer work (tests/vm/check.py). Prints PASS/FAIL lines, ends with `N passed, M failed`,
# exits non-zero when anything failed.
#
# The Debian part (packages, kernel, initrd) is cached under $CACHE, keyed by a hash of the
# package list and tests/vm/customize-base.sh; each run only copies it and adds ics-mail.
#
# Needs root (mmdebstrap's root mode, files owned by the guest's users).
# Env: ICSMAIL_BIN  binary to test (default: target/release/icsmail, built when missing)
#      CACHE        base image cache (default /var/cache/icsmail-vm)
#      WORK         per-run directory (default /tmp/icsmail-vm)
#      PORTBASE     host ports ${PORTBASE}25 (SMTP), …87 (submission), …65 (SMTPS), …10 (POP3),
#                   …95 (POP3S), …43 (IMAP), …93 (IMAPS), …99 (test hook); default: free ports
#                   the kernel picks (bind to port 0), picked again if QEMU can't bind one
#      MIRROR       Debian mirror for the guest (default: this machine's own, from its apt
#                   sources: tests/mirror.sh; no mirror's name lives in the repository)
#      REBUILD=1    rebuild the cached base image
#      KEEP=1       leave the VM running at the end (kill it with: kill $(cat $WORK/qemu.pid))
#      BOOT_TIMEOUT seconds to wait for the guest (default 240)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/vm"
CACHE=${CACHE:-/var/cache/icsmail-vm}
WORK=${WORK:-/tmp/icsmail-vm}
PORTBASE=${PORTBASE:-}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-240}
if [ -z "${MIRROR:-}" ]; then
  MIRROR=$(bash "$ROOT/tests/mirror.sh" archive) \
    || { echo "FAIL: no Debian mirror in this machine's apt sources (set MIRROR=URL)"; exit 1; }
fi
PY=/usr/bin/python3

now() { date +%s%N; }
secs() { local d=$(( $(now) - $1 )); printf '%d.%01d' $((d/1000000000)) $(( (d/100000000)%10 )); }
log() { echo "[vm] $*"; }
T0=$(now)
TIMINGS=()
timing() { TIMINGS+=("$1: $2 s"); log "$1 took $2 s"; }

[ "$(id -u)" -eq 0 ] || { echo "tests/vm/run.sh needs root (mmdebstrap, guest file ownership)" >&2; exit 2; }

# ------------------------------------------------------------------------------- host tools
# tests/install.sh --vm-only: QEMU from bookworm-backports (through a private sources list made
# from this machine's mirror), mmdebstrap, e2fsprogs, binutils, systemd, openssl, python3; then
# the self-check runs each of them once (after tests/run.sh, both find everything in place).
t=$(now)
CACHE="$CACHE" bash "$ROOT/tests/install.sh" --vm-only
if ! out=$(bash "$ROOT/tests/selfcheck.sh" --vm-only); then
  grep -v '^selfcheck ok' <<<"$out"; echo "FAIL: host tools missing (above)"; exit 1
fi
timing "host tools" "$(secs "$t")"

# ------------------------------------------------------------------------------- the binary
BIN=${ICSMAIL_BIN:-$ROOT/target/release/icsmail}
if [ ! -x "$BIN" ]; then
  log "building the release binary"
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  (cd "$ROOT" && cargo build --release)
fi
features=()
"$BIN" pop3d --help >/dev/null 2>&1 && features+=(pop3)
"$BIN" imapd --help >/dev/null 2>&1 && features+=(imap)
"$BIN" ldapd --help >/dev/null 2>&1 && features+=(ldap)
"$BIN" queue run --help >/dev/null 2>&1 && features+=(queue)
log "binary $BIN; daemons beyond smtpd present: ${features[*]:-none}"
has() { [[ " ${features[*]} " == *" $1 "* ]]; }

mkdir -p "$WORK"
RESULTS=$WORK/results.txt
: > "$RESULTS"

# ------------------------------------------------------------------------------- unit checks
t=$(now)
bash "$HERE/verify-units.sh" "$BIN" | tee -a "$RESULTS"
timing "systemd-analyze verify + security" "$(secs "$t")"

# ------------------------------------------------------------------------------- base image
GUEST_PACKAGES=systemd,systemd-sysv,dbus,udev,iproute2,procps,linux-image-amd64
KEY=$( (echo "$GUEST_PACKAGES bookworm"; cat "$HERE/customize-base.sh") | sha256sum | cut -c1-16)
BASE=$CACHE/base-$KEY
t=$(now)
if [[ ${REBUILD:-0} == 1 || ! -f $BASE/done ]]; then
  log "building the base image $BASE (Debian bookworm from $MIRROR)"
  rm -rf "$BASE"; mkdir -p "$BASE" "$CACHE/aptcache"
  INITRD=No mmdebstrap --quiet --variant=minbase --dpkgopt=force-unsafe-io \
    --include="$GUEST_PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $CACHE/aptcache /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives $CACHE/aptcache" \
    --customize-hook="bash $HERE/customize-base.sh \"\$1\"" \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
    bookworm "$BASE/rootfs" "$MIRROR" > "$BASE/mmdebstrap.log" 2>&1 \
    || { tail -30 "$BASE/mmdebstrap.log"; echo "FAIL: base image build"; exit 1; }
  cp "$BASE"/rootfs/boot/initrd.img-* "$BASE/initrd.img"
  # Uncompressed ELF vmlinux: QEMU boots it through the PVH entry point and skips the
  # in-guest decompressor (seconds under TCG).
  $PY -c '
import lzma, sys
d = open(sys.argv[1], "rb").read(); i = d.find(b"\xfd7zXZ\x00")
open(sys.argv[2], "wb").write(lzma.LZMADecompressor().decompress(d[i:]))' \
    "$(ls "$BASE"/rootfs/boot/vmlinuz-* | head -1)" "$BASE/vmlinux"
  touch "$BASE/done"
  timing "base image build (cached for later runs)" "$(secs "$t")"
else
  timing "base image (cached: $BASE)" "$(secs "$t")"
fi

# ------------------------------------------------------------------------------- this run's image
t=$(now)
R=$WORK/rootfs
rm -rf "$R" "$WORK/disk.raw"
cp -a "$BASE/rootfs" "$R"

# the release binary without its debug info (smaller image, faster first start under TCG)
install -D -m 0755 "$BIN" "$R/usr/bin/icsmail"
objcopy --strip-debug "$R/usr/bin/icsmail"
install -m 0644 "$ROOT"/units/*.service "$ROOT"/units/*.socket "$ROOT"/units/*.timer "$R/etc/systemd/system/"
install -D -m 0644 "$ROOT/units/icsmail.sysusers.conf" "$R/usr/lib/sysusers.d/icsmail.conf"
# the admin service's bus policy and bus activation (docs/dbus.md)
install -D -m 0644 "$ROOT/units/dbus/org.icsmail.Mail1.conf" "$R/usr/share/dbus-1/system.d/org.icsmail.Mail1.conf"
install -D -m 0644 "$ROOT/units/dbus/org.icsmail.Mail1.service" "$R/usr/share/dbus-1/system-services/org.icsmail.Mail1.service"
systemd-sysusers --root="$R" "$R/usr/lib/sysusers.d/icsmail.conf"
GID=$(awk -F: '$1 == "icsmail" {print $3}' "$R/etc/group")
[ -n "$GID" ] || { echo "FAIL: systemd-sysusers did not create the icsmail group"; exit 1; }

# queue.interval = 1 for the test: the timer drop-in follows the NixOS module's rule
# (60 % interval == 0 -> OnCalendar=*:0/<interval>)
mkdir -p "$R/etc/systemd/system/icsmail-queue.timer.d"
printf '[Timer]\nOnCalendar=\nOnCalendar=*:0/1\n' > "$R/etc/systemd/system/icsmail-queue.timer.d/interval.conf"

# configuration: one domain, one account, every encryption listener
C=$R/etc/icsmail
mkdir -p "$C/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj /CN=mail.example.test -addext subjectAltName=DNS:mail.example.test \
  -keyout "$C/tls/key.pem" -out "$C/tls/cert.pem" 2>/dev/null
printf '%s' 'alice-secret' | "$BIN" hash-password > "$C/alice.hash"
cat > "$C/config.json" <<'EOF'
{
  "domains": ["example.test"],
  "heloName": "mail.example.test",
  "accounts": {
    "alice@example.test": {
      "hashedPasswordFile": "/etc/icsmail/alice.hash",
      "aliases": ["postmaster@example.test"]
    }
  },
  "smtp": {
    "certificate": { "certFile": "/etc/icsmail/tls/cert.pem", "keyFile": "/etc/icsmail/tls/key.pem" },
    "smtps": { "enable": true }
  },
  "access": {
    "certificate": { "certFile": "/etc/icsmail/tls/cert.pem", "keyFile": "/etc/icsmail/tls/key.pem" },
    "implicitTls": { "enable": true }
  },
  "tls": { "mode": "optional" },
  "queue": { "interval": 1 }
}
EOF
# the address book on its two sockets, when this build has it
if has ldap; then
  $PY - "$C/config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["accounts"]["alice@example.test"]["displayName"] = "Alice Liddell"
config["addressBook"] = {"enable": True, "baseDn": "dc=example,dc=test"}
json.dump(config, open(path, "w"), indent=2)
PY
fi
chown -R 0:"$GID" "$C"; chmod 0750 "$C/tls"; chmod 0640 "$C/config.json" "$C/alice.hash" "$C"/tls/*.pem
cp "$C/tls/cert.pem" "$WORK/cert.pem"

# test hook: one shell command per connection, run as root, output back on the socket
cat > "$R/etc/systemd/system/vmtest-hook.socket" <<'EOF'
[Unit]
Description=VM test hook (one command per connection)
[Socket]
ListenStream=9999
Accept=yes
[Install]
WantedBy=sockets.target
EOF
cat > "$R/etc/systemd/system/vmtest-hook@.service" <<'EOF'
[Unit]
Description=VM test hook command
[Service]
ExecStart=/usr/local/sbin/vmtest-hook
StandardInput=socket
StandardOutput=socket
StandardError=socket
EOF
install -D -m 0755 /dev/stdin "$R/usr/local/sbin/vmtest-hook" <<'EOF'
#!/bin/sh
IFS= read -r cmd
sh -c "$cmd" 2>&1
exit 0
EOF

enable=(vmtest-hook.socket icsmail-smtp.socket icsmail-submission.socket icsmail-smtps.socket icsmail-queue.timer)
has pop3 && enable+=(icsmail-pop3.socket icsmail-pop3s.socket)
has imap && enable+=(icsmail-imap.socket icsmail-imaps.socket)
has ldap && enable+=(icsmail-ldap.socket icsmail-ldaps.socket)
systemctl --root="$R" enable -q "${enable[@]}"

# 1 GiB sparse ext4, filled straight from the directory
mkfs.ext4 -q -F -L root -d "$R" "$WORK/disk.raw" 1G
rm -rf "$R"
timing "per-run image (binary, units, config; mkfs.ext4 -d)" "$(secs "$t")"

# ------------------------------------------------------------------------------- boot
GUEST_PORTS=(25 587 465 110 995 143 993 389 636 9999)
declare -A FWD
# Host ports: fixed ones from PORTBASE, or free ones the kernel hands out (all held at once so
# they differ). A port can still be taken between the pick and QEMU's bind (CI once lost one to
# another process), so a failed start is retried with a fresh pick.
pick_ports() {
  local hosts
  if [ -n "$PORTBASE" ]; then
    hosts=(${PORTBASE}25 ${PORTBASE}87 ${PORTBASE}65 ${PORTBASE}10 ${PORTBASE}95 ${PORTBASE}43 ${PORTBASE}93 ${PORTBASE}89 ${PORTBASE}36 ${PORTBASE}99)
  else
    read -r -a hosts < <($PY -c "
import socket
socks = [socket.socket() for _ in range(${#GUEST_PORTS[@]})]
for s in socks: s.bind(('127.0.0.1', 0))
print(' '.join(str(s.getsockname()[1]) for s in socks))")
  fi
  hostfwd=""
  local i
  for i in "${!GUEST_PORTS[@]}"; do
    FWD[${GUEST_PORTS[$i]}]=${hosts[$i]}
    hostfwd+=",hostfwd=tcp:127.0.0.1:${hosts[$i]}-:${GUEST_PORTS[$i]}"
  done
}
rm -f "$WORK/console.log" "$WORK/qemu.pid"
t_boot=$(now)
for attempt in 1 2 3; do
  pick_ports
  if qemu-system-x86_64 -accel tcg,thread=multi,tb-size=256 -cpu max -smp 2 -m 768 \
    -nodefaults -display none -no-reboot -monitor none -serial "file:$WORK/console.log" \
    -kernel "$BASE/vmlinux" -initrd "$BASE/initrd.img" \
    -append "console=ttyS0 root=/dev/vda rw quiet panic=-1 systemd.unit=multi-user.target" \
    -drive "file=$WORK/disk.raw,format=raw,if=virtio,cache=unsafe" \
    -netdev "user,id=n0,restrict=on$hostfwd" \
    -device virtio-net-pci,netdev=n0 -device virtio-rng-pci \
    -daemonize -pidfile "$WORK/qemu.pid"; then
    break
  fi
  [ "$attempt" -lt 3 ] && [ -z "$PORTBASE" ] || { echo "FAIL: qemu did not start (host ports: ${hostfwd})"; exit 1; }
  log "qemu could not start (a host port was taken?); picking new ports"
done
QPID=$(cat "$WORK/qemu.pid")
cleanup() { [[ ${KEEP:-0} == 1 ]] || kill "$QPID" 2>/dev/null || true; }
trap cleanup EXIT
log "qemu started (pid $QPID); console: $WORK/console.log"

# ------------------------------------------------------------------------------- checks
t=$(now)
set +e
$PY "$HERE/check.py" --boot-timeout "$BOOT_TIMEOUT" --qemu-pid "$QPID" --cafile "$WORK/cert.pem" \
  --features "${features[*]}" \
  --smtp "${FWD[25]}" --submission "${FWD[587]}" --smtps "${FWD[465]}" \
  --pop3 "${FWD[110]}" --pop3s "${FWD[995]}" --imap "${FWD[143]}" --imaps "${FWD[993]}" \
  --ldap "${FWD[389]}" --ldaps "${FWD[636]}" --hook "${FWD[9999]}" | tee -a "$RESULTS"
rc=${PIPESTATUS[0]}
set -e
timing "boot + checks in the guest" "$(secs "$t")"
if grep -q '^FAIL' "$RESULTS" || [ "$rc" -ne 0 ]; then
  echo "--- console.log (tail)"; tail -30 "$WORK/console.log" | sed 's/^/  console| /'
fi
log "qemu RSS: $(( $(ps -o rss= -p "$QPID" 2>/dev/null || echo 0) / 1024 )) MiB"

# ------------------------------------------------------------------------------- summary
timing "total" "$(secs "$T0")"
echo "--- timings"
printf '  %s\n' "${TIMINGS[@]}"
passed=$(grep -c '^PASS' "$RESULTS" || true)
failed=$(grep -c '^FAIL' "$RESULTS" || true)
skipped=$(grep -c '^SKIP' "$RESULTS" || true)
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1   # check.py died without a FAIL line
echo "VM test: $skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
