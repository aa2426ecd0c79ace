#!/usr/bin/env bash
# Test the packages scripts/package.sh built into target/packages/ (docs/install.md):
#   .deb  contents, control fields, conffiles and maintainer scripts (dpkg-deb -c, -I, -f,
#         --ctrl-tarfile); the packaged unit and config are the repository's;
#   .rpm  files, config files (noreplace), scripts and requires (rpm -qp); its binary is the
#         .deb's;
#   then the .deb for real on this machine: `dpkg -i` creates the user (in group adm), the
#   files and directories, and enables the unit; `check-config` (as root and as the service
#   user) and `--version` from /usr/bin; an upgrade keeps an edited /etc/outpost/agent.toml and
#   the state; `dpkg -r` keeps configuration, state and user; `dpkg --purge` removes them all.
# systemd need not run (where it runs as PID 1 the postinst also starts the agent).
# Needs root, and a machine without outpost-agent installed, without a user "outpost" and
# without /etc/outpost or /var/lib/outpost: it refuses otherwise, and purges what it installed
# on any exit. Prints one line per check and exits non-zero if any failed.
#
#   scripts/test-packages.sh [PACKAGES_DIR]    default: target/packages
# Not -e: a failed check is counted and the next one runs. Single-quoted `bash -c` checks
# expand in that shell, on purpose.
# shellcheck disable=SC2016
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

if [ "$(id -u)" -ne 0 ]; then
  echo "test-packages.sh: needs root: it installs the .deb with dpkg -i, then purges it" \
    "(run it as root, on a machine where that is fine: CI, a VM, a container)" >&2
  exit 2
fi
for tool in dpkg dpkg-deb rpm python3 cargo; do
  command -v "$tool" >/dev/null ||
    { echo "test-packages.sh: $tool is needed (Debian: apt-get install rpm for rpm)" >&2; exit 2; }
done
# What this test creates and removes must not be there before it.
if dpkg-query -W -f='${Status}' outpost-agent 2>/dev/null | grep -qv 'not-installed'; then
  echo "test-packages.sh: the package outpost-agent is installed here; this test would purge" \
    "it: refusing" >&2
  exit 2
fi
for leftover in /etc/outpost /var/lib/outpost; do
  [ ! -e "$leftover" ] || { echo "test-packages.sh: $leftover exists: refusing" >&2; exit 2; }
done
if getent passwd outpost >/dev/null || getent group outpost >/dev/null; then
  echo "test-packages.sh: a user or group \"outpost\" exists: refusing" >&2
  exit 2
fi

meta=$(cargo metadata --format-version 1 --no-deps)
target_dir=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' <<<"$meta")
version=$(python3 -c 'import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "outpost-agent"))' <<<"$meta")
dir=${1:-$target_dir/packages}
deb_arch=$(dpkg --print-architecture)
rpm_arch=$(uname -m)
deb=$dir/outpost-agent_${version}-1_${deb_arch}.deb
rpm_file=$dir/outpost-agent-${version}-1.${rpm_arch}.rpm
for f in "$deb" "$rpm_file"; do
  [ -f "$f" ] || { echo "test-packages.sh: no $f (run scripts/package.sh)" >&2; exit 2; }
done

tmp=$(mktemp -d)
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: ok if COMMAND succeeds.
check() {
  local what=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then ok "$what"; else fail "$what ($*: $(head -c 600 "$tmp/out"))"; fi
}
# contains DESCRIPTION FILE TEXT: ok if FILE has the fixed string TEXT.
contains() {
  if grep -qF -- "$3" "$2"; then ok "$1"; else fail "$1: no \"$3\" in $(basename "$2")"; fi
}
lacks() {
  if grep -qF -- "$3" "$2"; then fail "$1: \"$3\" in $(basename "$2")"; else ok "$1"; fi
}
# Purge what the test installed, whatever happened (the token is this test's, not the package's).
cleanup() {
  rm -f /etc/outpost/token /etc/outpost/agent.d/50-token.toml
  if dpkg-query -W -f='${Status}' outpost-agent 2>/dev/null | grep -qv 'not-installed'; then
    echo "== cleanup: dpkg --purge outpost-agent"
    dpkg --purge outpost-agent >/dev/null 2>&1 || echo "cleanup: dpkg --purge failed" >&2
  fi
  getent passwd outpost >/dev/null && userdel outpost
  getent group outpost >/dev/null && groupdel outpost
  rm -rf /etc/outpost /var/lib/outpost "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== .deb: $deb"
dpkg-deb -f "$deb" >"$tmp/fields"
contains "deb Package" "$tmp/fields" "Package: outpost-agent"
contains "deb Version is the workspace's" "$tmp/fields" "Version: $version-1"
contains "deb Architecture" "$tmp/fields" "Architecture: $deb_arch"
contains "deb Depends names libc (\$auto)" "$tmp/fields" "libc6"
contains "deb Depends names init-system-helpers (deb-systemd-helper)" "$tmp/fields" "init-system-helpers"
dpkg-deb -I "$deb" >"$tmp/info"
for s in postinst prerm postrm conffiles; do contains "deb control has $s" "$tmp/info" " $s "; done
dpkg-deb -c "$deb" >"$tmp/contents"
if grep -qE '^-rwxr-xr-x (0/0|root/root) .* \./usr/bin/outpost-agent$' "$tmp/contents"; then
  ok "deb: the binary is root-owned, 0755"
else
  fail "deb: the binary is not root-owned 0755: $(grep ' ./usr/bin/outpost-agent$' "$tmp/contents")"
fi
for path in ./usr/bin/outpost-agent ./usr/lib/systemd/system/outpost-agent.service \
  ./usr/lib/sysusers.d/outpost-agent.conf ./etc/outpost/agent.toml; do
  if grep -q " $path\$" "$tmp/contents"; then ok "deb ships $path"; else fail "deb does not ship $path"; fi
done
mkdir "$tmp/control" "$tmp/data"
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$tmp/control"
dpkg-deb -x "$deb" "$tmp/data"
check "deb conffiles is /etc/outpost/agent.toml" \
  diff <(printf '/etc/outpost/agent.toml\n') "$tmp/control/conffiles"
for s in postinst prerm postrm; do
  check "deb $s is executable" test -x "$tmp/control/$s"
  check "deb $s parses (sh -n)" sh -n "$tmp/control/$s"
done
check "deb postinst is packaging/deb/postinst" cmp "$tmp/control/postinst" packaging/deb/postinst
contains "deb postinst: systemd-sysusers" "$tmp/control/postinst" "systemd-sysusers"
contains "deb postinst: useradd fallback" "$tmp/control/postinst" "useradd --system"
contains "deb postinst: group adm" "$tmp/control/postinst" "usermod --append --groups adm outpost"
contains "deb postinst: enables the unit" "$tmp/control/postinst" 'deb-systemd-helper enable "$unit"'
contains "deb postinst: starts only under systemd" "$tmp/control/postinst" "[ -d /run/systemd/system ]"
contains "deb prerm: stops on remove" "$tmp/control/prerm" "deb-systemd-invoke stop"
contains "deb postrm: purge removes the state" "$tmp/control/postrm" "rm -rf /var/lib/outpost"
check "deb unit is systemd/outpost-agent.service" \
  cmp "$tmp/data/usr/lib/systemd/system/outpost-agent.service" systemd/outpost-agent.service
check "deb config is packaging/agent.toml" cmp "$tmp/data/etc/outpost/agent.toml" packaging/agent.toml
check "deb sysusers.d is packaging/sysusers.d/outpost-agent.conf" \
  cmp "$tmp/data/usr/lib/sysusers.d/outpost-agent.conf" packaging/sysusers.d/outpost-agent.conf

echo "== .rpm: $rpm_file"
check "rpm: name, version and release are outpost-agent $version 1" \
  test "$(rpm -qp --queryformat '%{NAME} %{VERSION} %{RELEASE}' "$rpm_file" 2>/dev/null)" = \
  "outpost-agent $version 1"
rpm -qp --list "$rpm_file" >"$tmp/rpm-list" 2>/dev/null
for path in /usr/bin/outpost-agent /usr/lib/systemd/system/outpost-agent.service \
  /usr/lib/sysusers.d/outpost-agent.conf /etc/outpost/agent.toml; do
  if grep -qx "$path" "$tmp/rpm-list"; then ok "rpm ships $path"; else fail "rpm does not ship $path"; fi
done
check "rpm config files: /etc/outpost/agent.toml" \
  diff <(printf '/etc/outpost/agent.toml\n') <(rpm -qp --configfiles "$rpm_file" 2>/dev/null)
rpm -qp --queryformat '[%{FILEFLAGS:fflags} %{FILEMODES:perms} %{FILEUSERNAME} %{FILENAMES}\n]' \
  "$rpm_file" >"$tmp/rpm-files" 2>/dev/null
contains "rpm: agent.toml is %config(noreplace)" "$tmp/rpm-files" "cn -rw-r--r-- root /etc/outpost/agent.toml"
contains "rpm: the binary is root-owned, 0755" "$tmp/rpm-files" " -rwxr-xr-x root /usr/bin/outpost-agent"
rpm -qp --scripts "$rpm_file" >"$tmp/rpm-scripts" 2>/dev/null
for s in preinstall postinstall preuninstall postuninstall; do
  contains "rpm has a $s scriptlet" "$tmp/rpm-scripts" "$s scriptlet"
done
# An unreadable script path would silently become the script's text: check the text.
grep -v '^#' packaging/sysusers.d/outpost-agent.conf | grep . >"$tmp/sysusers-lines"
while read -r line; do
  contains "rpm %pre has the sysusers.d line: $line" "$tmp/rpm-scripts" "$line"
done <"$tmp/sysusers-lines"
contains "rpm %pre: useradd fallback" "$tmp/rpm-scripts" "useradd --system"
contains "rpm %post: enables the unit" "$tmp/rpm-scripts" "systemctl enable outpost-agent.service"
contains "rpm %preun: disables on erase" "$tmp/rpm-scripts" "systemctl --no-reload disable outpost-agent.service"
contains "rpm %postun: restarts after an upgrade" "$tmp/rpm-scripts" "systemctl try-restart outpost-agent.service"
rpm -qp --requires "$rpm_file" >"$tmp/rpm-requires" 2>/dev/null
contains "rpm requires /bin/sh" "$tmp/rpm-requires" "/bin/sh"
contains "rpm requires libc" "$tmp/rpm-requires" "libc.so.6"
# rpm >= 4.19 derives group() requires from sysusers.d "m" lines; nothing provides group(adm)
# before 4.19 (RHEL 9): packaging/sysusers.d/outpost-agent.conf must not have one.
lacks "rpm does not require group(adm)" "$tmp/rpm-requires" "group(adm)"
rpm_sha=$(rpm -qp --queryformat '[%{FILEDIGESTS} %{FILENAMES}\n]' "$rpm_file" 2>/dev/null |
  awk '$2 == "/usr/bin/outpost-agent" {print $1}')
deb_sha=$(sha256sum "$tmp/data/usr/bin/outpost-agent" | cut -d' ' -f1)
check "rpm and deb ship the same binary (sha256 $deb_sha)" test "$rpm_sha" = "$deb_sha"

echo "== dpkg -i $(basename "$deb")"
if dpkg -i "$deb" </dev/null >"$tmp/dpkg-i.log" 2>&1; then
  ok "dpkg -i"
else
  fail "dpkg -i: $(cat "$tmp/dpkg-i.log")"
  echo "$passed passed, $failed failed"
  exit 1
fi
check "user outpost: home /var/lib/outpost, no login shell" \
  bash -c '[[ $(getent passwd outpost | cut -d: -f6-7) == /var/lib/outpost:*/nologin ]]'
check "user outpost is a system user (uid < 1000)" test "$(id -u outpost)" -lt 1000
check "user outpost is in group adm" bash -c 'id -nG outpost | tr " " "\n" | grep -qx adm'
check "group outpost exists" getent group outpost
check "/usr/bin/outpost-agent is executable" test -x /usr/bin/outpost-agent
check "the unit is installed" test -f /usr/lib/systemd/system/outpost-agent.service
wants=/etc/systemd/system/multi-user.target.wants/outpost-agent.service
# deb-systemd-helper links /lib/systemd/system/... where /lib is /usr/lib (merged /usr).
check "the unit is enabled ($wants)" \
  test "$(readlink -e "$wants")" = "$(readlink -e /usr/lib/systemd/system/outpost-agent.service)"
check "/etc/outpost/agent.toml is a conffile" \
  bash -c "dpkg-query -W -f='\${Conffiles}' outpost-agent | grep -q '/etc/outpost/agent.toml'"
check "/etc/outpost/agent.d/ exists, empty" \
  bash -c '[ -d /etc/outpost/agent.d ] && [ -z "$(ls -A /etc/outpost/agent.d)" ]'
check "/var/lib/outpost is outpost:outpost, 0750" \
  test "$(stat -c '%U:%G %a' /var/lib/outpost)" = "outpost:outpost 750"
check "the installed unit verifies (systemd-analyze verify, no output)" \
  bash -c 'out=$(systemd-analyze verify --man=no outpost-agent.service 2>&1) && [ -z "$out" ] ||
    { echo "$out"; false; }'

# --version: "outpost-agent VERSION (commit HASH)".
version_out=$(/usr/bin/outpost-agent --version 2>&1)
if [[ $version_out =~ ^outpost-agent\ ${version//./\\.}\ \(commit\ [0-9a-f]{7,40}(-dirty)?\)$ ]]; then
  ok "--version: $version_out"
else
  fail "--version printed \"$version_out\", expected \"outpost-agent $version (commit HASH)\""
fi

# The default config is valid as shipped (a fresh install starts), and so is one with a token
# file an admin wrote.
check "check-config of the default config from the installed path (root)" \
  /usr/bin/outpost-agent check-config --config /etc/outpost/agent.toml
check "check-config of the default config as the service user outpost (as ExecStartPre)" \
  runuser -u outpost -- /usr/bin/outpost-agent check-config --config /etc/outpost/agent.toml
install -m 0640 -o root -g outpost /dev/null /etc/outpost/token
echo "test-token" >/etc/outpost/token
printf '[sink]\ntoken_file = "/etc/outpost/token"\n' >/etc/outpost/agent.d/50-token.toml
check "check-config with a token drop-in, as the service user (reads the token)" \
  runuser -u outpost -- /usr/bin/outpost-agent check-config --config /etc/outpost/agent.toml
check "status --config /etc/outpost/agent.toml (nothing shipped yet)" \
  /usr/bin/outpost-agent status --config /etc/outpost/agent.toml

echo "== upgrade: an edited conffile and the state survive"
echo "# edited by test-packages.sh" >>/etc/outpost/agent.toml
echo "state" >"$tmp/state-marker" && install -o outpost -g outpost -m 0640 "$tmp/state-marker" \
  /var/lib/outpost/test-marker
# The same package with a higher version (dpkg sees an upgrade, runs the scripts with the old
# version), and the same conffile: dpkg keeps the edited one without asking.
dpkg-deb -R "$deb" "$tmp/upgrade"
sed -i "s/^Version: .*/Version: ${version}-1+upgradetest/" "$tmp/upgrade/DEBIAN/control"
dpkg-deb --root-owner-group -Znone -b "$tmp/upgrade" "$tmp/upgrade.deb" >/dev/null
check "dpkg -i (upgrade to ${version}-1+upgradetest)" dpkg -i "$tmp/upgrade.deb" </dev/null
check "upgraded" test "$(dpkg-query -W -f='${Version}' outpost-agent)" = "${version}-1+upgradetest"
check "the edited /etc/outpost/agent.toml is kept" grep -qx "# edited by test-packages.sh" /etc/outpost/agent.toml
check "the state is kept" test -f /var/lib/outpost/test-marker
check "the unit is still enabled" test -L "$wants"
check "the user is still there" getent passwd outpost

echo "== dpkg -r: configuration, state and user stay"
check "dpkg -r" dpkg -r outpost-agent
check "the binary is gone" test ! -e /usr/bin/outpost-agent
check "the unit file is gone" test ! -e /usr/lib/systemd/system/outpost-agent.service
check "/etc/outpost/agent.toml stays" test -f /etc/outpost/agent.toml
check "the state stays" test -f /var/lib/outpost/test-marker
check "the user stays" getent passwd outpost

echo "== dpkg --purge: everything goes"
rm -f /etc/outpost/token /etc/outpost/agent.d/50-token.toml # the admin's, not the package's
check "dpkg --purge" dpkg --purge outpost-agent
check "the package is gone" bash -c "! dpkg-query -W -f='\${Status}' outpost-agent 2>/dev/null | grep -q installed"
check "no user outpost" bash -c '! getent passwd outpost'
check "no group outpost" bash -c '! getent group outpost'
check "no /etc/outpost" test ! -e /etc/outpost
check "no /var/lib/outpost" test ! -e /var/lib/outpost
check "no unit enablement or mask under /etc/systemd/system" \
  bash -c '[ -z "$(find /etc/systemd/system -name "outpost-agent*" -print -quit)" ]'
check "no deb-systemd-helper state left" \
  bash -c '[ -z "$(find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
    -name "*outpost-agent*" -print -quit 2>/dev/null)" ]'

echo "$passed passed, $failed failed"
((failed == 0))
