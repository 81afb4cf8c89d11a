#!/usr/bin/env bash
# Installs every Debian 12 package the tests use, with everything each needs for the way the
# tests use it (tests/run.sh runs this first, then tests/selfcheck.sh). apt installs with
# --no-install-recommends, so each needed piece is listed here by name, with the reason.
# Usage: tests/install.sh [--vm | --vm-only]
#   --vm       also the host tools of the VM test (tests/vm/run.sh)
#   --vm-only  only those (what tests/vm/run.sh installs when run on its own)
# Needs root (or sudo). Installs only what is missing; apt-get update only when something is.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WITH_TESTS=1 WITH_VM=0
case "${1:-}" in
  --vm) WITH_VM=1 ;;
  --vm-only) WITH_TESTS=0 WITH_VM=1 ;;
  "") ;;
  *) echo "usage: tests/install.sh [--vm | --vm-only]" >&2; exit 2 ;;
esac

# package: why (the test that needs it)
PACKAGES=(
  "swaks: SMTP client of test_delivery, test_submission, test_tls"
  "libnet-ssleay-perl: swaks --tls/--tlsc (Net::SSLeay; only a Recommends of swaks)"
  "libio-socket-ssl-perl: swaks' TLS socket layer (IO::Socket::SSL)"
  "openssl: s_client/s_server/req/x509 in the tests, certificates of the VM and Nix checks"
  "curl: IMAP/IMAPS/POP3/POP3S client (test_imap_clients, test_pop3); libcurl4 has OpenSSL"
  "fetchmail: POP3 client with STLS and POP3S (test_pop3)"
  "isync: mbsync, IMAP sync client with STARTTLS (test_imap_clients)"
  "libsasl2-modules: the SASL PLAIN/LOGIN mechanisms mbsync's AUTHENTICATE needs (a Recommends)"
  "testssl.sh: TLS protocol/cipher scans (test_tls); brings bsdextrautils, dnsutils, procps"
  "postfix: the remote MX of the queue tests (test_queue)"
  "dnsmasq-base: the DNS server of the queue, policy and DKIM tests (MX, PTR, TXT records)"
  "clamav-daemon: clamd, the virus scanner of test_antivirus and (behind c-icap) test_dlp; brings libclamav, clamav-base and clamav-freshclam (the tests write their own signature database)"
  "c-icap: the ICAP server of test_antivirus (the Kaspersky path) and test_dlp, with its magic file"
  "libc-icap-mod-virus-scan: c-icap's virus_scan service and clamd_mod, the module asking clamd"
  "python3: the integration tests (/usr/bin/python3), the VM checks, mirror/selfcheck helpers"
  "python3-pytest: runs tests/integration"
  "python3-venv: the virtual environment of tests/requirements.txt (tests/venv.sh)"
  "python3-pip: installs tests/requirements.txt into it"
  "python3-cryptography: certificates made in the tests (icshelpers.make_dated_cert)"
  "python3-aiosmtpd: the smarthost peers of test_queue_relay and test_dkim"
  "python3-dkim: dkimsign and the dkim module that verifies our signatures (test_dkim)"
  "python3-dnspython: test_dkim's TXT queries to its dnsmasq (also a Depends of python3-dkim)"
  "python3-nacl: dkimpy's Ed25519 (also a Depends of python3-dkim)"
  "systemd: systemd-socket-activate (test_socket_activation), busctl (test_dbus_admin); systemd-analyze, -sysusers (VM)"
  "nix-bin: nix-instantiate/nix for the Nix checks (nixos-module/eval/check.sh)"
  "dbus-daemon: the private system-like bus of test_dbus_admin"
  "ldap-utils: ldapsearch, ldapadd, ldapmodify, ldapdelete, ldapwhoami (test_ldap; StartTLS through libldap's GnuTLS)"
  "python3-ldap3: the second LDAP client of test_ldap (the ldap3 library of PyPI, as Debian packages it)"
  "libglib2.0-bin: gdbus, which shows D-Bus error names and monitors signals (test_dbus_admin)"
  "dovecot-imapd: the private Dovecot the IMAP extension tests compare wire forms with (imaphelpers.DovecotTarget; its system service is stopped and disabled)"
  "polkitd: the polkit daemon that test_dbus_polkit runs on its private bus (JavaScript rules by duktape, a Depends)"
  "roundcube: Debian's Roundcube 1.6, the webmail of test_webmail (served by php -S: php-cli, php-intl, php-mbstring come with roundcube-core; apt picks libapache2-mod-php8.2 + apache2-bin for php8.2's SAPI dependency, no apache2 service)"
  "roundcube-sqlite3: Roundcube's database in test_webmail (php-sqlite3), one SQLite file per run"
  "php-xml: DOM and XML, which Roundcube's HTML parsing (php-masterminds-html5) needs"
  "php-ldap: PHP's LDAP functions, Roundcube's LDAP address book (test_webmail's autocomplete)"
  "php-net-ldap3: Net_LDAP3, the LDAP layer of Roundcube's address book (only a Suggests of roundcube-core)"
  "chromium: the headless browser Playwright drives in test_webmail (launched as /usr/bin/chromium, --no-sandbox as root)"
  "fonts-dejavu-core: text in the browser's screenshots (chromium itself brings no font; fontconfig's first choice)"
  "g++: builds libFuzzer (C++, in libfuzzer-sys) for the fuzz targets (bench/reliability/fuzz.sh, the short run of tests/run.sh)"
)
VM_PACKAGES=(
  "mmdebstrap: builds the VM test's Debian guest"
  "e2fsprogs: mkfs.ext4 -d makes the guest's disk from a directory"
  "binutils: objcopy strips the binary copied into the guest"
  "systemd: systemd-analyze verify/security, systemd-sysusers --root, systemctl --root"
  "openssl: the guest's test certificate"
  "ldap-utils: ldapsearch, the client of the address-book check (tests/vm/check.py)"
  "python3: tests/vm/check.py, the kernel's decompression"
)
# QEMU from bookworm-backports: bookworm's 7.2 would make apt remove a qemu-utils 10.x that a
# machine may already have (this development machine does). Each package whose version the
# others pin exactly is named; ipxe-qemu (virtio-net's option ROM) comes from bookworm itself.
VM_BACKPORTS=(
  "qemu-system-x86: the VM test's QEMU (TCG)"
  "qemu-system-common: its common files (pinned to the same version)"
  "qemu-system-data: its firmware blobs, e.g. the PVH boot ROM (same version)"
  "seabios: its BIOS (the version qemu 10 needs)"
)

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
# other apt users (unattended upgrades, a parallel job) hold the lock for a while
APT_OPTS=(-o DPkg::Lock::Timeout=600 -y -q --no-install-recommends)

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
names() { local e; for e in "$@"; do printf '%s\n' "${e%%:*}"; done; }

missing=()
lists=()
((WITH_TESTS)) && lists+=("${PACKAGES[@]}")
((WITH_VM)) && lists+=("${VM_PACKAGES[@]}")
while read -r pkg; do
  installed "$pkg" || [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
done < <(names "${lists[@]}")
if ((${#missing[@]})); then
  echo "install.sh: installing ${missing[*]}"
  "${SUDO[@]}" apt-get -q -o DPkg::Lock::Timeout=600 update
  # package:service pairs whose system instance the tests do not want (see below)
  SERVICES=(postfix:postfix.service clamav-daemon:clamav-daemon.service
            clamav-freshclam:clamav-freshclam.service c-icap:c-icap.service
            dovecot-core:dovecot.service)
  new_services=()
  for pair in "${SERVICES[@]}"; do
    installed "${pair%%:*}" || new_services+=("${pair#*:}")
  done
  "${SUDO[@]}" apt-get install "${APT_OPTS[@]}" "${missing[@]}"
  # The tests run private Postfix instances on 127.0.0.x:25; the system instance that the
  # package starts under systemd (inet_interfaces = all) would hold that port. The tests also
  # start their own clamd, c-icap and Dovecot with their own configs (a system Dovecot would hold
  # 143 and 993); the system freshclam would
  # download signatures from the network, and the system clamd and c-icap would only take
  # memory. Only services installed here and now are stopped: existing ones are the machine's
  # business.
  if ((${#new_services[@]})) && [ -d /run/systemd/system ]; then
    for service in "${new_services[@]}"; do
      if systemctl list-unit-files "$service" >/dev/null 2>&1; then
        echo "install.sh: stopping and disabling the system $service just installed (the tests start their own)"
        "${SUDO[@]}" systemctl disable --now "$service" || true
      fi
    done
  fi
fi

if ((WITH_VM)) && ! command -v qemu-system-x86_64 >/dev/null; then
  # a private sources list from this machine's own mirror: nothing global changes
  archive=$("$HERE/mirror.sh" archive)
  security=$("$HERE/mirror.sh" security 2>/dev/null || true)
  APTD=${CACHE:-/var/cache/icsmail-vm}/apt-host
  "${SUDO[@]}" mkdir -p "$APTD/lists/partial"
  {
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-backports main\n' \
      "$archive" "$archive" "$archive"
    [ -z "$security" ] || printf 'deb %s bookworm-security main\n' "$security"
  } | "${SUDO[@]}" tee "$APTD/sources.list" >/dev/null
  A=(-o Dir::Etc::sourcelist="$APTD/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::lists="$APTD/lists")
  bp=()
  while read -r pkg; do bp+=("$pkg/bookworm-backports"); done < <(names "${VM_BACKPORTS[@]}")
  echo "install.sh: installing ${bp[*]} (sources: $APTD/sources.list)"
  "${SUDO[@]}" apt-get -q -o DPkg::Lock::Timeout=600 "${A[@]}" update
  "${SUDO[@]}" apt-get install "${APT_OPTS[@]}" "${A[@]}" "${bp[@]}"
fi

# --- Python libraries Debian does not package (tests/requirements.txt) ----------------------
# Into a virtual environment that also sees Debian's python3-* packages, from the machine's own
# package index (pip's configuration); rebuilt when requirements.txt changes.
if ((WITH_TESTS)); then
  # shellcheck source=tests/venv.sh
  . "$HERE/venv.sh"
  if ! cmp -s "$HERE/requirements.txt" "$TEST_VENV/requirements.txt" 2>/dev/null; then
    echo "install.sh: installing tests/requirements.txt into $TEST_VENV"
    export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1  # playwright: Debian's chromium, never a download
    "${SUDO[@]}" rm -rf "$TEST_VENV"
    "${SUDO[@]}" /usr/bin/python3 -m venv --system-site-packages "$TEST_VENV"
    "${SUDO[@]}" "$TEST_PYTHON" -m pip install -q --no-input -r "$HERE/requirements.txt"
    "${SUDO[@]}" cp "$HERE/requirements.txt" "$TEST_VENV/requirements.txt"
  fi
fi

# --- cargo-fuzz, which builds the fuzz targets with libFuzzer (fuzz/, bench/reliability/fuzz.sh)
# From crates.io through cargo's own registry configuration; pinned, and built with its lock
# file. It runs on the stable toolchain with RUSTC_BOOTSTRAP=1 (docs/reliability.md).
CARGO_FUZZ_VERSION=0.13.2
if ((WITH_TESTS)); then
  if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    # (--install-only on a system without Rust: tests/run.sh installs it once Rust is there)
    echo "install.sh: no cargo here, so no cargo-fuzz yet"
  elif ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\b"; then
    echo "install.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
  fi
fi
