#!/usr/bin/env bash
# Renders one of the default config files the RPMs ship (packaging/config/agent.yaml,
# coordinator.yaml) with site values, so a provisioned machine runs the packaged file with only
# the values that must differ changed (used by scripts/vagrant/provision.sh; works for any
# provisioning tool that has bash and awk).
#   - `key=value` replaces the first `key:` line, commented out or not (`# advertise: ...`).
#   - `etcd=a:2379,b:2379` (the one list option in those files) replaces the whole list block.
#   - A key that is not in the file is an error: it would mean the shipped file and this
#     provisioning drifted apart, and the program refuses unknown keys anyway.
# Usage: render-config.sh SRC.yaml key=value... > OUT.yaml
set -euo pipefail
if [ $# -lt 1 ] || [ ! -r "$1" ]; then
  echo "usage: render-config.sh SRC.yaml key=value... (SRC must be readable)" >&2; exit 2
fi
src=$1; shift
for a in "$@"; do
  [[ "$a" =~ ^[A-Za-z]+=.+$ ]] || { echo "render-config.sh: '$a' is not key=value" >&2; exit 2; }
done
# POSIX awk (mawk and gawk): no capture groups.
awk -v assignments="$(printf '%s\n' "$@")" '
  BEGIN {
    n = split(assignments, lines, "\n")
    for (i = 1; i <= n; i++) {
      if (lines[i] == "") continue
      eq = index(lines[i], "=")
      want[substr(lines[i], 1, eq - 1)] = substr(lines[i], eq + 1)
    }
  }
  skipping && /^[ ]+- / { next }
  { skipping = 0 }
  /^(# ?)?[A-Za-z]+:/ {
    key = $0; sub(/^# ?/, "", key); sub(/:.*/, "", key)
    if ((key in want) && !(key in done)) {
      done[key] = 1
      if (key == "etcd") {
        print "etcd:"
        m = split(want[key], items, ",")
        for (j = 1; j <= m; j++) print "  - " items[j]
        skipping = 1
      } else {
        print key ": " want[key]
      }
      next
    }
  }
  { print }
  END {
    for (k in want) if (!(k in done)) { printf "render-config.sh: no \"%s:\" line in the file\n", k > "/dev/stderr"; bad = 1 }
    exit bad
  }
' "$src"
