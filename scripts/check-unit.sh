#!/usr/bin/env bash
# Check systemd/outpost-agent.service (docs/install.md, "The systemd unit"):
#   1. `systemd-analyze verify`: it exits 0 on unknown keys and bad values and only prints
#      warnings, so anything it prints on stderr fails the check. It needs the binaries the
#      unit runs to exist: it verifies a copy of the unit whose /usr/bin/outpost-agent is a copy
#      of the dist build (built when missing) in a temporary directory.
#   2. `systemd-analyze security --offline=yes --threshold=20`: exposure 2.0 or lower.
#   3. bench/e2e.sh runs the agent with the unit's environment, read with
#      `sed -n 's/^Environment=//p'`: one Environment= line, GLIBC_TUNABLES=..., no spaces.
# No running systemd needed.
set -euo pipefail
cd "$(dirname "$0")/.."
unit=systemd/outpost-agent.service
threshold=20 # tenths: 2.0
command -v systemd-analyze >/dev/null ||
  { echo "check-unit.sh: systemd-analyze is needed (Debian: apt-get install systemd)" >&2; exit 1; }

target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin=$target_dir/dist/outpost-agent
if [ ! -x "$bin" ]; then
  echo "== cargo build --profile dist -p outpost-agent (systemd-analyze verify needs the binary)"
  cargo build --profile dist --locked -p outpost-agent
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$bin" "$tmp/outpost-agent"
sed "s|/usr/bin/outpost-agent|$tmp/outpost-agent|g" "$unit" >"$tmp/outpost-agent.service"
grep -q "^ExecStart=$tmp/outpost-agent run " "$tmp/outpost-agent.service" ||
  { echo "check-unit.sh: $unit has no ExecStart=/usr/bin/outpost-agent run ..." >&2; exit 1; }

failed=0
echo "== systemd-analyze verify $unit"
if ! systemd-analyze verify --man=no "$tmp/outpost-agent.service" 2>"$tmp/verify.err" ||
  [ -s "$tmp/verify.err" ]; then
  echo "FAIL: systemd-analyze verify printed (any warning is a failure):" >&2
  sed "s|$tmp/||g" "$tmp/verify.err" >&2
  failed=1
else
  echo "ok: no warnings"
fi

echo "== systemd-analyze security --offline=yes --threshold=$threshold $unit"
if systemd-analyze security --offline=yes --threshold="$threshold" --no-pager \
  "$tmp/outpost-agent.service" >"$tmp/security.out" 2>&1; then
  echo "ok: $(grep -o 'Overall exposure level.*' "$tmp/security.out")"
else
  # The settings that cost exposure, then the verdict.
  grep '✗' "$tmp/security.out" >&2 || true
  echo "FAIL: exposure above ${threshold:0:1}.${threshold:1}:" \
    "$(grep -o 'Overall exposure level.*' "$tmp/security.out" || tail -n 3 "$tmp/security.out")" >&2
  failed=1
fi

echo "== Environment= lines as bench/e2e.sh reads them"
env_lines=$(sed -n 's/^Environment=//p' "$unit")
if [ "$(printf '%s\n' "$env_lines" | grep -c .)" -eq 1 ] &&
  [[ $env_lines == GLIBC_TUNABLES=glibc.malloc.* ]] && [[ $env_lines != *[[:space:]]* ]]; then
  echo "ok: $env_lines"
else
  echo "FAIL: expected one Environment=GLIBC_TUNABLES=... line without spaces, got:" >&2
  printf '  %s\n' "$env_lines" >&2
  failed=1
fi

exit "$failed"
