# The ics-mail side of the smtp-inbound benchmarks (sourced by bench/smtp-inbound/*.sh).

# icsmail_bench_config DIR PORT HASH [EXTRA]: DIR/config.json for one smtpd on 127.0.0.1:PORT
# delivering user@bench.test (password hash HASH) into DIR/mail; EXTRA is more top-level
# members, each starting with a comma.
icsmail_bench_config() {
  local d=$1 port=$2 hash=$3 extra=${4:-}
  cat >"$d/config.json" <<EOF
{
  "domains": ["bench.test"],
  "heloName": "bench.test",
  "stateDir": "$d/state",
  "storage": {"path": "$d/mail"},
  "accounts": {"user@bench.test": {"hashedPassword": "$hash"}},
  "smtp": {"port": $port, "interfaces": ["127.0.0.1"], "submissionPort": null,
           "limits": {"connectionsPerIp": 100}}$extra
}
EOF
}
