#!/usr/bin/env bash
# Prints a Debian mirror URL taken from this machine's own apt sources, so that no mirror's
# host name lives in the repository (tests/install.sh, tests/vm/run.sh).
# Usage: tests/mirror.sh archive    the archive mirror (suites CODENAME, -updates, -backports)
#        tests/mirror.sh security   the security mirror (suite CODENAME-security)
# Reads /etc/apt/sources.list, /etc/apt/sources.list.d/*.list (one-line `deb [opts] URI suite
# comps…`) and /etc/apt/sources.list.d/*.sources (deb822 paragraphs with Types/URIs/Suites,
# `Enabled: no` skipped); apt reads no other file names, and neither does this. CODENAME is
# the machine's (/etc/os-release), or $CODENAME. Exit 1 with a message on stderr when no
# source matches. $APT_ETC (default /etc/apt) points elsewhere for tests.
set -euo pipefail
want=${1:?usage: mirror.sh archive|security}
APT_ETC=${APT_ETC:-/etc/apt}
if [ -z "${CODENAME:-}" ]; then
  CODENAME=$( (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || true)
fi
[ -n "$CODENAME" ] || { echo "mirror.sh: no VERSION_CODENAME in /etc/os-release; set CODENAME" >&2; exit 1; }

files=()
[ -f "$APT_ETC/sources.list" ] && files+=("$APT_ETC/sources.list")
for f in "$APT_ETC"/sources.list.d/*.list "$APT_ETC"/sources.list.d/*.sources; do
  [ -f "$f" ] && files+=("$f")
done

# every enabled `deb` source as "URI SUITE" lines, in file order
entries() {
  local f
  for f in "${files[@]}"; do
    case "$f" in
      *.sources)
        awk '
          function flush() {
            if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no")
              for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
            types = ""; enabled = ""; nu = 0; ns = 0
          }
          /^[ \t]*#/ { next }
          /^[ \t]*$/ { flush(); next }
          /^[A-Za-z-]+:/ {
            key = tolower($1); sub(/:$/, "", key)
            val = $0; sub(/^[^:]*:[ \t]*/, "", val)
            if (key == "types") types = val
            else if (key == "enabled") enabled = val
            else if (key == "uris") nu = split(val, u, /[ \t]+/)
            else if (key == "suites") ns = split(val, s, /[ \t]+/)
          }
          END { flush() }' "$f" ;;
      *)
        awk '
          /^[ \t]*#/ || NF == 0 { next }
          $1 == "deb" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if (i + 1 <= NF) print $i, $(i + 1)
          }' "$f" ;;
    esac
  done
}

case "$want" in
  archive) pattern="^($CODENAME|$CODENAME-updates|$CODENAME-backports)$" ;;
  security) pattern="^($CODENAME-security|$CODENAME/updates)$" ;;
  *) echo "mirror.sh: unknown kind $want (archive or security)" >&2; exit 2 ;;
esac
uri=$(entries | awk -v p="$pattern" '$2 ~ p { print $1; exit }')
if [ -z "$uri" ]; then
  echo "mirror.sh: no enabled 'deb' source for the $want suites of $CODENAME in ${files[*]:-$APT_ETC (no sources files)}" >&2
  exit 1
fi
printf '%s\n' "${uri%/}"
