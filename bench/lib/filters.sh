# Content filters for the smtp-inbound benchmark's FILTERS=1 mode (issue 14): one private
# clamd that both servers scan through, a DKIM key published by a private dnsmasq, a message
# signed with it by python3-dkim, and for Postfix opendkim (verify mode) and clamav-milter as
# smtpd_milters. Source it; every function takes the directory it works in.
#
# clamd's database is made here (the EICAR test signature): no signature download is possible
# or wanted, and with both servers scanning through the same clamd the comparison measures
# what each MTA adds around the scan, not ClamAV itself.

# Not under test.: opendkim resolves through libunbound, which answers every name under test.
# (RFC 6761) itself with NXDOMAIN, and asks no server on 127.0.0.0/8 (so the DNS server of this
# mode listens on another address of lo, see filters.sh). A resolver configuration file that
# would lift both makes opendkim crash under concurrent load (libunbound's config lexer).
FILTERS_DOMAIN=bench-filters.example
FILTERS_SELECTOR=bench

# filters_clamd_start DIR: starts clamd in the foreground on DIR/clamd.sock (pid in DIR/clamd.pid).
filters_clamd_start() {
  local dir=$1
  mkdir -p "$dir/db"
  # The EICAR test string as a ClamAV body signature (hex of its first 32 bytes).
  printf 'Bench.EICAR:0:*:%s\n' \
    "$(printf 'X5O!P%%@AP[4\\PZX54(P^)7CC)7}$EICAR' | od -An -tx1 | tr -d ' \n')" \
    >"$dir/db/bench.ndb"
  cat >"$dir/clamd.conf" <<EOF
Foreground yes
LocalSocket $dir/clamd.sock
LocalSocketMode 666
DatabaseDirectory $dir/db
LogFile $dir/clamd.log
LogTime yes
LogClean yes
PidFile $dir/clamd.pid
StreamMaxLength 25M
MaxThreads 8
User root
EOF
  clamd -c "$dir/clamd.conf" >"$dir/clamd.out" 2>&1 &
  echo $! >"$dir/clamd.pid"
  for _ in $(seq 300); do [ -S "$dir/clamd.sock" ] && return 0; sleep 0.1; done
  tail -5 "$dir/clamd.out" >&2
  return 1
}

# filters_dkim_key DIR: an RSA-2048 key DIR/dkim.key and the TXT record's strings in
# DIR/dkim.txt (dnsmasq --txt-record strings: "v=DKIM1; k=rsa; p=…" cut into
# comma-separated pieces under the 255-byte string limit).
filters_dkim_key() {
  local dir=$1 pub
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/dkim.key" 2>/dev/null
  pub="$(openssl pkey -in "$dir/dkim.key" -pubout -outform DER 2>/dev/null | base64 -w0)"
  /usr/bin/python3 - "$pub" >"$dir/dkim.txt" <<'EOF'
import sys
record = "v=DKIM1; k=rsa; p=" + sys.argv[1]
print(",".join(record[i:i + 250] for i in range(0, len(record), 250)))
EOF
}

# filters_dns_start DIR ADDR: dnsmasq on ADDR:53 serving the DKIM key and SPF/DMARC records
# of $FILTERS_DOMAIN (everything else under example. and bench.test is NXDOMAIN; nothing is
# forwarded).
filters_dns_start() {
  local dir=$1 addr=$2
  dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address="$addr" --port=53 --pid-file="$dir/dnsmasq.pid" \
    --local=/example/ --local=/bench.test/ --local=/in-addr.arpa/ \
    --txt-record="$FILTERS_SELECTOR._domainkey.$FILTERS_DOMAIN,$(cat "$dir/dkim.txt")" \
    --txt-record="$FILTERS_DOMAIN,v=spf1 ip4:127.0.0.0/8 -all" \
    --txt-record="_dmarc.$FILTERS_DOMAIN,v=DMARC1; p=none" \
    --log-queries --log-facility="$dir/dnsmasq.log" >"$dir/dnsmasq.out" 2>&1 &
  echo $! >"$dir/dnsmasq.pid"
  sleep 0.3
  kill -0 "$(cat "$dir/dnsmasq.pid")" 2>/dev/null || { cat "$dir/dnsmasq.out" >&2; return 1; }
}

# filters_signed_message DIR SIZE: DIR/message.eml, a SIZE-byte text message from
# sender@$FILTERS_DOMAIN to user@bench.test, signed with DIR/dkim.key (relaxed/relaxed) by
# python3-dkim.
filters_signed_message() {
  local dir=$1 size=$2
  /usr/bin/python3 - "$dir/dkim.key" "$size" "$FILTERS_SELECTOR" "$FILTERS_DOMAIN" \
    >"$dir/message.eml" <<'EOF'
import sys, dkim
key, size, selector, domain = open(sys.argv[1], "rb").read(), int(sys.argv[2]), sys.argv[3], sys.argv[4]
line = b"The quick brown fox jumps over the lazy dog, benchmarking the content filters.\r\n"
body = (line * (size // len(line) + 1))[:size].rsplit(b"\r\n", 1)[0] + b"\r\n"
head = (b"From: Sender <sender@" + domain.encode() + b">\r\n"
        b"To: User <user@bench.test>\r\n"
        b"Subject: filters benchmark\r\n"
        b"Date: Wed, 02 Dec 2026 00:00:00 +0000\r\n"
        b"Message-ID: <filters-bench@" + domain.encode() + b">\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n")
message = head + b"\r\n" + body
sig = dkim.sign(message, selector.encode(), domain.encode(), key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
sys.stdout.buffer.write((sig + message).replace(b"\r\n", b"\n"))
EOF
}

# filters_milters_start DIR NAMESERVER: opendkim (verify only, keys looked up at NAMESERVER,
# which must not be a 127.0.0.0/8 address)
# on DIR/milter/opendkim.sock and clamav-milter (scanning through DIR/clamd.sock) on
# DIR/milter/clamav-milter.sock, both as the postfix user.
filters_milters_start() {
  local dir=$1 ns=$2
  # The milters run as postfix and make their sockets there.
  mkdir -p "$dir/milter"
  chown postfix:postfix "$dir/milter"
  cat >"$dir/opendkim.conf" <<EOF
Mode v
Canonicalization relaxed/relaxed
Socket local:$dir/milter/opendkim.sock
UMask 000
PidFile $dir/milter/opendkim.pid
Nameservers $ns
AlwaysAddARHeader yes
AuthservID bench.test
Syslog no
UserID postfix
Background no
EOF
  opendkim -f -x "$dir/opendkim.conf" >"$dir/opendkim.out" 2>&1 &
  echo $! >"$dir/opendkim.pid.bg"
  cat >"$dir/clamav-milter.conf" <<EOF
MilterSocket $dir/milter/clamav-milter.sock
MilterSocketMode 666
FixStaleSocket yes
User postfix
Foreground yes
PidFile $dir/milter/clamav-milter.pid
ClamdSocket unix:$dir/clamd.sock
OnClean Accept
OnInfected Quarantine
OnFail Defer
AddHeader Replace
LogFile $dir/milter/clamav-milter.log
MaxFileSize 25M
EOF
  clamav-milter -c "$dir/clamav-milter.conf" >"$dir/clamav-milter.out" 2>&1 &
  echo $! >"$dir/clamav-milter.pid.bg"
  for _ in $(seq 100); do
    [ -S "$dir/milter/opendkim.sock" ] && [ -S "$dir/milter/clamav-milter.sock" ] && return 0
    sleep 0.1
  done
  tail -n 5 "$dir/opendkim.out" "$dir/clamav-milter.out" >&2
  return 1
}

# filters_stop DIR: stops whatever the functions above started in DIR.
filters_stop() {
  local dir=$1 f pids=()
  for f in "$dir"/opendkim.pid.bg "$dir"/clamav-milter.pid.bg "$dir"/dnsmasq.pid "$dir"/clamd.pid; do
    [ -f "$f" ] && pids+=("$(cat "$f")")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill "${pids[@]}" 2>/dev/null
  local pid alive
  for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || return 0
    sleep 0.1
  done
  kill -9 "${pids[@]}" 2>/dev/null
  return 0
}
