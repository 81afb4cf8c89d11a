#!/usr/bin/env bash
# Runs every program the tests use once, in the mode the tests use it, before any test runs
# (tests/run.sh, after tests/install.sh). Prints `ok:` per tool, one `MISSING:` line per
# piece that is not there (naming the package that brings it), and exits 1 if any is missing.
# Usage: tests/selfcheck.sh [--vm | --vm-only]
#   --vm       also the VM test's host tools;  --vm-only  only those (tests/vm/run.sh)
# (No `cmd | grep -q` here: with pipefail, grep's early exit can fail cmd with SIGPIPE.)
set -uo pipefail
WITH_TESTS=1 WITH_VM=0
case "${1:-}" in
  --vm) WITH_VM=1 ;;
  --vm-only) WITH_TESTS=0 WITH_VM=1 ;;
  "") ;;
  *) echo "usage: tests/selfcheck.sh [--vm | --vm-only]" >&2; exit 2 ;;
esac
PY=/usr/bin/python3
problems=0
ok() { printf 'selfcheck ok: %s\n' "$*"; }
missing() { printf 'selfcheck MISSING: %s\n' "$*"; problems=$((problems + 1)); }
T=$(mktemp -d /tmp/icsmail-selfcheck.XXXXXX)
trap 'rm -rf "$T"' EXIT
have() { command -v "$1" >/dev/null 2>&1; }

# A TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
closed_port() { $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [ -x $PY ] && $PY -c 'import ssl, lzma, sqlite3, smtplib, imaplib, poplib, asyncio' 2>/dev/null; then
  ok "python3 $($PY -c 'import sys; print(sys.version.split()[0])') with ssl, lzma, smtplib, imaplib, poplib"
else
  missing "/usr/bin/python3 with its standard library (package python3)"
  echo "selfcheck: the remaining checks need /usr/bin/python3"; exit 1
fi

if ((WITH_TESTS)); then
# Python modules of the tests
# shellcheck source=tests/venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
for mod in pytest:python3-pytest cryptography:python3-cryptography aiosmtpd:python3-aiosmtpd ldap3:python3-ldap3 \
           imapclient:tests/requirements.txt playwright:tests/requirements.txt; do
  if out=$("$TEST_PYTHON" -c "import ${mod%%:*} as m; print(getattr(m, '__version__', ''))" 2>&1); then ok "python3 module ${mod%%:*} $out ($TEST_VENV)"
  else missing "python3 module ${mod%%:*} in $TEST_VENV (from ${mod#*:}): $(tail -1 <<<"$out")"; fi
done
# Roundcube as test_webmail serves it: Debian's document root and config defaults, the PHP
# extensions it uses (SQLite, intl, mbstring, DOM, LDAP) and Net_LDAP3
if [ -r /var/lib/roundcube/public_html/index.php ] && [ -r /etc/roundcube/defaults.inc.php ] \
   && [ -r /usr/share/roundcube/SQL/sqlite.initial.sql ]; then ok "roundcube $(dpkg-query -W -f='${Version}' roundcube-core 2>/dev/null)"
else missing "Roundcube's document root, defaults.inc.php and SQLite schema (packages roundcube, roundcube-sqlite3)"; fi
if have php && mods=$(php -m 2>&1); then
  need=(); for m in pdo_sqlite intl mbstring dom ldap; do grep -qx "$m" <<<"$mods" || need+=("$m"); done
  if ((${#need[@]})); then missing "PHP extensions ${need[*]} (packages roundcube-sqlite3, php-intl, php-mbstring, php-xml, php-ldap)"
  else ok "php $(php -r 'echo PHP_VERSION;') with pdo_sqlite, intl, mbstring, dom, ldap"; fi
else
  missing "php (package php-cli, a Depends of roundcube)"
fi
if [ -r /usr/share/php/Net/LDAP3.php ]; then ok "Net_LDAP3 (Roundcube's LDAP address book)"
else missing "Net_LDAP3 (package php-net-ldap3)"; fi
# Chromium headless under Playwright, as test_webmail launches it, rendering text (fonts)
if [ -x /usr/bin/chromium ]; then
  out=$(PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 120 "$TEST_PYTHON" - "$T/page.png" 2>&1 <<'PY'
import sys
from playwright.sync_api import sync_playwright
with sync_playwright() as pw:
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page()
    page.set_content("<p id=t style='font-size:40px'>ics-mail</p>")
    width = page.evaluate("document.getElementById('t').getBoundingClientRect().width")
    page.screenshot(path=sys.argv[1])
    print(browser.version, width)
    browser.close()
PY
  )
  read -r version width <<<"$(tail -1 <<<"$out")"
  if [ -s "$T/page.png" ] && [ "${width%.*}" -gt 50 ] 2>/dev/null; then ok "chromium $version headless under Playwright (renders text)"
  else missing "chromium headless under Playwright (packages chromium, fonts-dejavu-core; tests/requirements.txt): $(tail -2 <<<"$out" | tr '\n' ' ')"; fi
else
  missing "chromium (package chromium)"
fi
# dovecot: the private IMAP server the extension tests compare with
if have dovecot && [ -x /usr/lib/dovecot/imap ]; then ok "dovecot $(dovecot --version | cut -d' ' -f1) with imap"
else missing "dovecot with its imap binary (package dovecot-imapd)"; fi

# openssl: the tests make RSA and EC certificates and run s_client / s_server
if have openssl && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
     -subj /CN=selfcheck -addext subjectAltName=DNS:selfcheck,DNS:127.0.0.1,IP:127.0.0.1 -keyout "$T/key.pem" -out "$T/cert.pem" 2>"$T/openssl.err" \
   && grep -q -- '-starttls' <<<"$(openssl s_client -help 2>&1)" && grep -q -- '-accept' <<<"$(openssl s_server -help 2>&1)"; then
  ok "openssl $(openssl version | cut -d' ' -f2): req -x509 (EC), s_client -starttls, s_server"
else
  missing "openssl with req/s_client/s_server (package openssl): $(cat "$T/openssl.err" 2>/dev/null | tail -1)"
fi

# swaks: --tls against a closed port must fail on the connection, not on missing TLS modules
if have swaks; then
  port=$(closed_port)
  out=$(swaks --server 127.0.0.1 --port "$port" --tls --auth LOGIN --auth-user u --auth-password p \
        --from a@selfcheck.test --to b@selfcheck.test --helo selfcheck.test --timeout 5 </dev/null 2>&1)
  rc=$?
  if grep -qi 'not available\|requires' <<<"$out"; then
    missing "swaks TLS/AUTH support: $(grep -i -m1 'not available\|requires' <<<"$out") (packages libnet-ssleay-perl, libio-socket-ssl-perl)"
  elif [ "$rc" -eq 2 ] && grep -qi 'connect' <<<"$out"; then
    ok "swaks $(swaks --version 2>&1 | grep -o '[0-9]\{8\}[.0-9]*' | head -1): --tls --auth LOGIN reaches the connection (refused on a closed port)"
  else
    missing "swaks --tls: unexpected result (exit $rc): $(tail -2 <<<"$out")"
  fi
else
  missing "swaks (package swaks)"
fi

# curl: TLS and the mail protocols
if have curl && v=$(curl -V 2>&1); then
  protos=$(grep '^Protocols:' <<<"$v"); feats=$(grep '^Features:' <<<"$v")
  need=(); for p in imap imaps pop3 pop3s smtp smtps; do grep -qw "$p" <<<"$protos" || need+=("$p"); done
  if ((${#need[@]})) || ! grep -qw SSL <<<"$feats"; then
    missing "curl with TLS and ${need[*]:-} (package curl): $protos / $feats"
  else ok "curl $(head -1 <<<"$v" | cut -d' ' -f2): SSL, imap(s), pop3(s), smtp(s)"; fi
else
  missing "curl (package curl)"
fi

# fetchmail: built with SSL (STLS and POP3S)
if have fetchmail; then
  v=$(HOME="$T" FETCHMAILHOME="$T" fetchmail -V </dev/null 2>&1 | grep -m1 '^This is fetchmail')
  if grep -q '+SSL' <<<"$v"; then ok "fetchmail: $v"
  else missing "fetchmail with SSL (package fetchmail): $v"; fi
else
  missing "fetchmail (package fetchmail)"
fi

# mbsync as the tests run it: STARTTLS (its OpenSSL, the certificate from CertificateFile),
# then SASL AUTHENTICATE PLAIN, against a scripted IMAP server (isync matches the host name
# against DNS names only, so the certificate names 127.0.0.1 as one, like the tests'). Without
# the SASL modules mbsync has no PLAIN and falls back to the LOGIN command after STARTTLS: the
# sync still works, but not in the mode a real client setup (and the test) means to use.
if have mbsync && [ -s "$T/cert.pem" ]; then
  cat > "$T/imap.py" <<'PY'
import socket, ssl, sys
cert, key = sys.argv[1], sys.argv[2]
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1); srv.settimeout(30)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept(); conn.settimeout(30)
caps = b"IMAP4rev1 STARTTLS LOGINDISABLED"
conn.sendall(b"* OK [CAPABILITY " + caps + b"] selfcheck\r\n")
reader = conn.makefile("rb")
while True:
    parts = reader.readline().split()
    if len(parts) < 2:
        break
    tag, cmd = parts[0], parts[1].upper()
    if cmd == b"CAPABILITY":
        conn.sendall(b"* CAPABILITY " + caps + b"\r\n" + tag + b" OK\r\n")
    elif cmd == b"STARTTLS":
        conn.sendall(tag + b" OK begin TLS\r\n")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
        conn = ctx.wrap_socket(conn, server_side=True); reader = conn.makefile("rb")
        caps = b"IMAP4rev1 AUTH=PLAIN"
    elif cmd in (b"AUTHENTICATE", b"LOGIN"):
        print(cmd.decode(), parts[2].decode() if cmd == b"AUTHENTICATE" else "", flush=True)
        conn.sendall(tag + b" NO [AUTHENTICATIONFAILED] selfcheck\r\n")
    else:
        conn.sendall(tag + b" BAD selfcheck\r\n")
PY
  coproc IMAP { $PY "$T/imap.py" "$T/cert.pem" "$T/key.pem"; }
  read -r -t 10 port <&"${IMAP[0]}"
  mkdir -p "$T/maildir"
  printf 'IMAPAccount a\nHost 127.0.0.1\nPort %s\nUser u\nPass p\nSSLType STARTTLS\nCertificateFile %s\n\nIMAPStore r\nAccount a\n\nMaildirStore l\nPath %s/maildir/\nInbox %s/maildir/INBOX\n\nChannel c\nFar :r:\nNear :l:\n' \
    "$port" "$T/cert.pem" "$T" "$T" > "$T/mbsyncrc"
  out=$(HOME="$T" timeout 30 mbsync -c "$T/mbsyncrc" -a 2>&1)
  read -r -t 10 seen <&"${IMAP[0]}" || seen=""
  kill "$IMAP_PID" 2>/dev/null; wait "$IMAP_PID" 2>/dev/null
  if [ "$seen" = "AUTHENTICATE PLAIN" ]; then
    ok "mbsync $(mbsync --version 2>&1 | head -1 | grep -o '[0-9][0-9.]*'): STARTTLS, then SASL AUTHENTICATE PLAIN"
  elif [ "$seen" = "LOGIN" ]; then
    missing "mbsync has no SASL PLAIN and fell back to LOGIN (package libsasl2-modules)"
  else
    missing "mbsync STARTTLS + SASL: the server saw '${seen:-nothing}'; mbsync said: $(tail -2 <<<"$out" | tr '\n' ' ')"
  fi
elif have mbsync; then
  missing "mbsync check: no test certificate (openssl failed above)"
else
  missing "mbsync (package isync)"
fi

# testssl.sh and the tools it calls (hexdump, dig, ps, openssl)
TESTSSL=$(command -v testssl || command -v testssl.sh || true)
if [ -n "$TESTSSL" ]; then
  port=$(closed_port)
  out=$(timeout 60 "$TESTSSL" --quiet --warnings off --color 0 -n none --protocols "127.0.0.1:$port" </dev/null 2>&1)
  tools=(); for t in hexdump dig ps; do have "$t" || tools+=("$t"); done
  if ((${#tools[@]})); then
    missing "testssl.sh needs ${tools[*]} (packages bsdextrautils, dnsutils, procps)"
  elif grep -q "Can't connect to \"127.0.0.1:$port\"" <<<"$out"; then
    ok "testssl.sh $("$TESTSSL" --version 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'testssl *[0-9][^ ]*' | head -1 | tr -s ' ' | cut -d' ' -f2): runs, and reports the closed port"
  else
    missing "testssl.sh did not get as far as connecting: $(grep -v '^\s*$' <<<"$out" | tail -3 | tr '\n' ' ')"
  fi
else
  missing "testssl.sh (package testssl.sh)"
fi

# postfix: the tests run `postfix -c DIR start` with a master.cf made from the system's
if have postfix || [ -x /usr/sbin/postfix ]; then
  PATH=$PATH:/usr/sbin
  if v=$(postconf -d mail_version 2>&1) && [ -r /etc/postfix/master.cf ] && postconf -d tls_high_cipherlist >/dev/null 2>&1; then
    ok "postfix: $v, with TLS, /etc/postfix/master.cf present"
  else
    missing "postfix with /etc/postfix/master.cf (package postfix): $v"
  fi
else
  missing "postfix (package postfix)"
fi

if have dnsmasq && v=$(dnsmasq --version 2>&1 | head -1); then ok "dnsmasq: $v"
else missing "dnsmasq (package dnsmasq-base)"; fi

# clamd and c-icap with virus_scan/clamd_mod: the scanners of test_antivirus and test_dlp
# (the tests run them in the foreground with their own configs and signature database)
clamd_bin=$(command -v clamd || echo /usr/sbin/clamd)
if [ -x "$clamd_bin" ] && v=$("$clamd_bin" --version 2>&1 | head -1); then ok "clamd: $v"
else missing "clamd (package clamav-daemon)"; fi
icap_dir=$(ls -d /usr/lib/*/c_icap 2>/dev/null | head -1)
if have c-icap && v=$(c-icap -V 2>&1 | head -1) && [ -r /etc/c-icap/c-icap.magic ]; then ok "c-icap: $v"
else missing "c-icap with /etc/c-icap/c-icap.magic (package c-icap)"; fi
if [ -n "$icap_dir" ] && [ -r "$icap_dir/virus_scan.so" ] && [ -r "$icap_dir/clamd_mod.so" ] \
   && [ -d /usr/share/c_icap/templates/virus_scan ]; then ok "c-icap virus_scan.so and clamd_mod.so in $icap_dir"
else missing "c-icap's virus_scan and clamd_mod (package libc-icap-mod-virus-scan)"; fi

# the LDAP clients of test_ldap (and of the VM test's address-book check)
for t in ldapsearch ldapadd ldapmodify ldapdelete ldapwhoami; do
  if have "$t" && v=$("$t" -VV 2>&1 | grep -o 'OpenLDAP: [a-z]* [^ ]*'); then ok "$t: $v"
  else missing "$t (package ldap-utils)"; fi
done

if have systemd-socket-activate && v=$(systemd-socket-activate --version 2>&1 | head -1); then ok "systemd-socket-activate: $v"
else missing "systemd-socket-activate (package systemd)"; fi

for t in nix-instantiate nix; do
  if have "$t" && v=$("$t" --version 2>&1); then ok "$t: $v"
  else missing "$t (package nix-bin)"; fi
done
fi # WITH_TESTS

if ((WITH_VM)); then
  if have openssl; then ok "openssl (VM test)"; else missing "openssl (package openssl)"; fi
  if have ldapsearch; then ok "ldapsearch (VM test)"; else missing "ldapsearch (package ldap-utils)"; fi
  for t in systemd-analyze systemd-sysusers systemctl; do
    if have "$t"; then ok "$t (VM test)"; else missing "$t (package systemd)"; fi
  done
  # mmdebstrap: resolves the guest's bookworm minbase from this machine's mirror and keyring
  # (--simulate: apt runs, nothing is downloaded beyond the indices)
  HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  if ! have mmdebstrap; then
    missing "mmdebstrap (package mmdebstrap)"
  elif ! mirror=$(bash "$HERE/mirror.sh" archive 2>&1); then
    missing "a Debian mirror in this machine's apt sources for the VM guest: $mirror"
  elif out=$(timeout 300 mmdebstrap --simulate --quiet --variant=minbase bookworm "$T/guest" "$mirror" 2>&1); then
    ok "$(mmdebstrap --version 2>&1): resolves bookworm minbase from $mirror"
  else
    missing "mmdebstrap --simulate from $mirror failed: $(tail -2 <<<"$out" | tr '\n' ' ')"
  fi
  if have mkfs.ext4 && truncate -s 16M "$T/disk" && mkdir -p "$T/root/etc" \
     && mkfs.ext4 -q -F -d "$T/root" "$T/disk" >/dev/null 2>&1; then ok "mkfs.ext4 -d"
  else missing "mkfs.ext4 with -d (package e2fsprogs)"; fi
  if have objcopy && objcopy --strip-debug "$(type -P true)" "$T/true" 2>/dev/null; then ok "objcopy --strip-debug"
  else missing "objcopy (package binutils)"; fi
  # QEMU as the VM test starts it: TCG, the PC machine's BIOS, virtio-net's and -rng's option
  # ROMs, user networking; paused (-S) and quit from the monitor
  if have qemu-system-x86_64; then
    out=$(echo quit | timeout 60 qemu-system-x86_64 -accel tcg -cpu max -m 64 -nodefaults -display none -S \
      -monitor stdio -netdev user,id=n0,restrict=on -device virtio-net-pci,netdev=n0 -device virtio-rng-pci 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ]; then ok "$(qemu-system-x86_64 --version | head -1): TCG, virtio-net, virtio-rng, user networking"
    else missing "qemu-system-x86_64 cannot start a VM like the test's (exit $rc): $(grep -v '^QEMU\|^(qemu)' <<<"$out" | tail -2 | tr '\n' ' ')"; fi
  else
    missing "qemu-system-x86_64 (package qemu-system-x86, from bookworm-backports)"
  fi
fi

if [ "$problems" -gt 0 ]; then
  echo "selfcheck: $problems missing piece(s): install them (tests/install.sh does) before the tests run"
  exit 1
fi
echo "selfcheck: every tool the tests use is there"
