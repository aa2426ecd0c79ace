#!/usr/bin/env bash
# Checks the fleet install examples: packaging/ansible (the outpost_agent role, the example
# playbook and inventory) and packaging/cloud-init/user-data.yaml. Exits 0 only when all pass:
#   1. ansible-playbook --syntax-check of the example playbook;
#   2. ansible-lint, production profile (packaging/ansible/.ansible-lint), on the role, the
#      playbook and the test harness;
#   3. the role against this machine (ansible-playbook -i localhost, -c local), every case
#      asserted by packaging/ansible/tests/localhost.yml:
#      - check mode on a "fresh host" (paths in a temporary directory that does not exist yet):
#        the package from a URL (a stand-in outpost-agent .deb built here; apt only simulates
#        it) and from a file on the controller;
#      - for real, with the package and service tasks off and the files written into a
#        temporary directory: first run, a second run that must change nothing, a change of the
#        log inputs (reload), a change of the sink (restart), check-mode runs (a diff, an
#        invalid value reported by check-config; nothing written),
#        an invalid value that outpost-agent check-config must refuse (file left as it was), and
#        a drop-in in agent.d/ that conflicts with the new agent.toml (the merged check fails);
#   4. cloud-init schema --config-file on packaging/cloud-init/user-data.yaml (cloud-init from
#      Debian's package, unpacked into .tools/: it is not on PyPI), and check-config on the
#      agent.toml it writes.
# check-config uses the agent binary in $OUTPOST_AGENT_BIN, else the newest of target/debug and
# target/release (this script builds nothing); without one those checks are skipped with a
# warning, and fail under CI=true.
# Installs (once, with a stamp) into .tools/ansible-venv and .tools/cloud-init; writes nothing
# else outside a temporary directory. Needs python3 with venv, dpkg-deb and apt-get (Debian).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ans="$root/packaging/ansible"
venv="$root/.tools/ansible-venv"
ci_dir="$root/.tools/cloud-init"
# Pinned: ansible-core 2.19 is the last series that runs on Python 3.11; ansible-lint 26.10.1
# works with it. configobj, jsonpatch and requests are what cloud-init's schema command imports
# beyond what those two bring (PyYAML, Jinja2, jsonschema).
specs=('ansible-core==2.19.14' 'ansible-lint==26.10.1' 'configobj==5.0.9' 'jsonpatch==1.47'
  'requests==2.34.2')
start=$(date +%s)

die() { echo "check-ansible: FAIL: $*" >&2; exit 1; }
step() { echo "== [$(($(date +%s) - start))s] $*"; }
warn_or_die() {
  if [ "${CI:-}" = true ]; then die "$* (required under CI=true)"; fi
  echo "check-ansible: warning: $*" >&2
}

# --- tools ---------------------------------------------------------------------------------
stamp="$venv/.installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${specs[*]}" ]; then
  :
else
  echo "== installing ${specs[*]} into $venv (once)"
  rm -rf "$venv"
  python3 -m venv "$venv" ||
    die "cannot create a Python virtualenv in $venv (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install -q --no-cache-dir --disable-pip-version-check "${specs[@]}" ||
    die "pip could not install ${specs[*]}"
  echo "${specs[*]}" >"$stamp"
fi
export PATH="$venv/bin:$PATH"

tmp="$(mktemp -d)"
# With OUTPOST_KEEP_TEST_DIRS set (as for the Rust tests) the logs and files stay for a look.
if [ -n "${OUTPOST_KEEP_TEST_DIRS:-}" ]; then
  trap 'echo "check-ansible: kept $tmp"' EXIT
else
  trap 'rm -rf "$tmp"' EXIT
fi
# Keep Ansible's and ansible-lint's homes, caches and temporary files in $tmp.
export HOME="$tmp/home" XDG_CACHE_HOME="$tmp/cache" ANSIBLE_HOME="$tmp/ansible-home"
export ANSIBLE_LOCAL_TEMP="$tmp/ansible-local" ANSIBLE_REMOTE_TEMP="$tmp/ansible-remote"
export ANSIBLE_CONFIG="$ans/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_COLLECTIONS_PATH="$tmp/collections" ANSIBLE_ROLES_PATH="$ans/roles"
# Modules run on this machine with the venv's Python (apt re-runs itself under the system Python
# that has python3-apt); interpreter discovery could pick a broken shim.
export ANSIBLE_PYTHON_INTERPRETER="$venv/bin/python" ANSIBLE_DEPRECATION_WARNINGS=false
# Temporary files of the modules (the check-mode candidate's directory, say) too.
export TMPDIR="$tmp/tmpdir"
mkdir -p "$HOME" "$TMPDIR"
cd "$ans"
v_core="$(ansible --version)" v_lint="$(ansible-lint --version 2>/dev/null)"
echo "== ${v_core%%$'\n'*}; ${v_lint%%$'\n'*}"

# --- 1. syntax -----------------------------------------------------------------------------
step "ansible-playbook --syntax-check playbook.yml"
ansible-playbook -i inventory/hosts.yml --syntax-check playbook.yml >"$tmp/syntax.log" 2>&1 ||
  { cat "$tmp/syntax.log" >&2; die "syntax check of packaging/ansible/playbook.yml"; }

# --- 2. lint -------------------------------------------------------------------------------
step "ansible-lint (profile: production)"
ansible-lint --offline --profile production -q roles/outpost_agent playbook.yml tests/localhost.yml \
  inventory >"$tmp/lint.log" 2>&1 ||
  { cat "$tmp/lint.log" >&2; die "ansible-lint (production profile) found problems"; }

# --- 3. the role against this machine ------------------------------------------------------
agent="${OUTPOST_AGENT_BIN:-}"
if [ -z "$agent" ]; then
  target="${CARGO_TARGET_DIR:-$root/target}"
  agent="$(ls -t "$target/debug/outpost-agent" "$target/release/outpost-agent" 2>/dev/null |
    head -1 || true)"
fi
if [ -n "$agent" ] && [ -x "$agent" ]; then
  agent_bin="$agent"
  step "configs are checked by $agent check-config"
else
  agent=""
  warn_or_die "no outpost-agent binary (OUTPOST_AGENT_BIN, target/debug, target/release):" \
    "the rendered configs are not checked by check-config"
  # A stand-in that accepts every config.
  mkdir -p "$tmp/bin" && printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/outpost-agent"
  chmod +x "$tmp/bin/outpost-agent"
  agent_bin="$tmp/bin/outpost-agent"
fi

# run CASE [ansible-playbook arguments...]: the test harness against localhost; prints the
# output on failure.
run() {
  local case="$1"
  shift
  if ! ansible-playbook -i localhost, -c local tests/localhost.yml -e @tests/vars/common.yml \
    -e outpost_test_case="$case" "$@" >"$tmp/$case.log" 2>&1; then
    cat "$tmp/$case.log" >&2
    die "case $case: ansible-playbook failed (output above)"
  fi
  grep -q 'PLAY RECAP' "$tmp/$case.log" || { cat "$tmp/$case.log" >&2; die "case $case: no play ran"; }
}
# recap_changed CASE: the number after changed= in the case's PLAY RECAP line for localhost.
recap_changed() { sed -n 's/^localhost *: .*changed=\([0-9]*\).*/\1/p' "$tmp/$1.log"; }

fresh="$tmp/fresh" # does not exist: a host without the package or /etc/outpost
fresh_paths=(-e "outpost_agent_config_dir=$fresh/etc/outpost"
  -e "outpost_agent_binary=$fresh/usr/bin/outpost-agent"
  -e "outpost_agent_package_cache_dir=$fresh/var/cache/outpost-agent")

if command -v dpkg-deb >/dev/null && /usr/bin/python3 -c 'import apt' 2>/dev/null; then
  # A stand-in package: check mode only asks apt what installing it would do.
  mkdir -p "$tmp/deb/DEBIAN"
  cat >"$tmp/deb/DEBIAN/control" <<'EOF'
Package: outpost-agent
Version: 0.0.0~check
Architecture: all
Maintainer: Outpost developers <dev@example.com>
Description: stand-in package for scripts/check-ansible.sh (never installed)
EOF
  # Named as scripts/package.sh names packages: the URL below is built from the role's
  # outpost_agent_pkg_filename.
  deb="$tmp/outpost-agent_0.0.0~check_$(dpkg --print-architecture).deb"
  dpkg-deb --root-owner-group --build "$tmp/deb" "$deb" >/dev/null
  step "check mode, fresh host, package from a URL (apt simulates the stand-in .deb)"
  run check-url --check --diff "${fresh_paths[@]}" -e outpost_agent_install_from=url \
    -e outpost_agent_version=0.0.0~check \
    -e "outpost_agent_package_url=file://$tmp/{{ outpost_agent_pkg_filename }}"
  step "check mode, fresh host, package from a file on the controller"
  run check-file --check --diff "${fresh_paths[@]}" -e outpost_agent_install_from=file \
    -e "outpost_agent_package_file=$deb"
  [ ! -e "$fresh" ] || die "check mode created $fresh"
else
  warn_or_die "no dpkg-deb or no python3-apt for /usr/bin/python3 (not Debian?):" \
    "the check-mode runs of the package tasks are skipped"
fi

# For real, files only: no package, no service, everything under $tmp/etc/outpost.
conf="$tmp/etc/outpost"
files=(-e outpost_agent_manage_package=false -e outpost_agent_manage_service=false
  -e "outpost_agent_config_dir=$conf" -e "outpost_agent_state_dir=$tmp/state"
  -e "outpost_agent_owner=$(id -un)" -e "outpost_agent_group=$(id -gn)"
  -e "outpost_agent_binary=$agent_bin")
step "apply: first run writes agent.toml and agent.env (0600), restart"
run apply-first "${files[@]}"
step "apply: second run changes nothing"
run apply-again "${files[@]}"
[ "$(recap_changed apply-again)" = 0 ] ||
  { cat "$tmp/apply-again.log" >&2; die "the second run changed something (not idempotent)"; }
grep -q '^OUTPOST_SINK_TOKEN="placeholder-token-not-a-secret"$' "$conf/agent.env" ||
  die "agent.env has no OUTPOST_SINK_TOKEN line"
! grep -q placeholder-token "$conf/agent.toml" || die "the sink token leaked into agent.toml"
! grep -q placeholder-token "$tmp"/apply-*.log || die "the sink token appears in ansible's output"
step "check mode: a change of the log inputs is shown, nothing is written"
sum="$(sha256sum "$conf/agent.toml")"
run check-logs --check --diff "${files[@]}" -e @tests/vars/logs.yml
[ "$(sha256sum "$conf/agent.toml")" = "$sum" ] || die "check mode modified agent.toml"
grep -q '^+service = "java \\"svc\\""' "$tmp/check-logs.log" || {
  cat "$tmp/check-logs.log" >&2
  die "check mode --diff did not show the new log input"
}
if [ -n "$agent" ]; then
  step "check mode: an invalid value is reported by check-config, nothing is written"
  if ansible-playbook -i localhost, -c local tests/localhost.yml -e @tests/vars/common.yml \
    -e outpost_test_case=check-invalid --check "${files[@]}" -e outpost_agent_batch_max_records=0 \
    >"$tmp/check-invalid.log" 2>&1; then
    cat "$tmp/check-invalid.log" >&2
    die "check mode accepted an invalid batch.max_records"
  fi
  grep -q 'batch.max_records' "$tmp/check-invalid.log" ||
    { cat "$tmp/check-invalid.log" >&2; die "check mode failed for another reason"; }
  [ "$(sha256sum "$conf/agent.toml")" = "$sum" ] || die "check mode modified agent.toml"
fi
step "apply: log inputs changed (reload)"
run apply-logs "${files[@]}" -e @tests/vars/logs.yml
step "apply: sink changed to kinesis (restart)"
run apply-sink "${files[@]}" -e @tests/vars/logs.yml -e @tests/vars/kinesis.yml
grep -qF 'AWS_SECRET_ACCESS_KEY="example/secret+key=\"with\\quotes\""' "$conf/agent.env" ||
  { cat "$conf/agent.env" >&2; die "agent.env does not quote AWS_SECRET_ACCESS_KEY as systemd reads it"; }
! grep -q 'example/secret' "$tmp/apply-sink.log" || die "the AWS secret key appears in ansible's output"
if [ -n "$agent" ]; then
  step "apply: an invalid value is refused by check-config, agent.toml stays"
  sum="$(sha256sum "$conf/agent.toml")"
  if ansible-playbook -i localhost, -c local tests/localhost.yml -e @tests/vars/common.yml \
    -e outpost_test_case=apply-invalid "${files[@]}" -e outpost_agent_host_interval=often \
    >"$tmp/apply-invalid.log" 2>&1; then
    cat "$tmp/apply-invalid.log" >&2
    die "an invalid host.interval was accepted"
  fi
  grep -q 'failed to validate' "$tmp/apply-invalid.log" && grep -q 'host.interval' "$tmp/apply-invalid.log" ||
    { cat "$tmp/apply-invalid.log" >&2; die "the invalid config failed for another reason"; }
  [ "$(sha256sum "$conf/agent.toml")" = "$sum" ] || die "an invalid config replaced agent.toml"
  step "apply: a drop-in in agent.d/ that conflicts with agent.toml stops the run"
  mkdir -p "$conf/agent.d"
  # Kinesis allows at most 1000KiB a batch.
  printf '[batch]\nmax_bytes = "2MiB"\n' >"$conf/agent.d/50-conflict.toml"
  if ansible-playbook -i localhost, -c local tests/localhost.yml -e @tests/vars/common.yml \
    -e outpost_test_case=apply-dropin "${files[@]}" -e @tests/vars/logs.yml -e @tests/vars/kinesis.yml \
    >"$tmp/apply-dropin.log" 2>&1; then
    cat "$tmp/apply-dropin.log" >&2
    die "a conflicting drop-in was not noticed"
  fi
  grep -q 'Check the merged configuration' "$tmp/apply-dropin.log" &&
    grep -q '50-conflict.toml: batch.max_bytes' "$tmp/apply-dropin.log" ||
    { cat "$tmp/apply-dropin.log" >&2; die "the conflicting drop-in failed for another reason"; }
  rm -r "$conf/agent.d"
fi

# --- 4. cloud-init -------------------------------------------------------------------------
ud="$root/packaging/cloud-init/user-data.yaml"
[ "$(head -1 "$ud")" = "#cloud-config" ] || die "$ud does not start with #cloud-config"
python3 - "$ud" "$tmp/cloud-init-agent.toml" <<'EOF' || die "$ud is not valid YAML (above)"
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
files = {f["path"]: f for f in doc["write_files"]}
assert files["/etc/outpost/agent.env"]["permissions"] == "0600", "agent.env must be 0600"
open(sys.argv[2], "w").write(files["/etc/outpost/agent.toml"]["content"])
EOF
if [ -n "$agent" ]; then
  step "check-config on the agent.toml that user-data.yaml writes"
  "$agent" check-config --config "$tmp/cloud-init-agent.toml" ||
    die "the agent.toml in packaging/cloud-init/user-data.yaml is not valid (above)"
fi
ci_py="$ci_dir/usr/lib/python3/dist-packages"
if [ ! -d "$ci_py/cloudinit" ]; then
  step "unpacking Debian's cloud-init package into $ci_dir (once; it is not on PyPI)"
  mkdir -p "$tmp/apt"
  sandbox=()
  [ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
  # Unpacked beside, then moved into place: an interrupted run leaves no half of it.
  if (cd "$tmp/apt" && apt-get download -q "${sandbox[@]}" cloud-init >"$tmp/apt.log" 2>&1) &&
    dpkg-deb -x "$tmp"/apt/cloud-init_*.deb "$tmp/cloud-init"; then
    mkdir -p "$(dirname "$ci_dir")" && rm -rf "$ci_dir" && mv "$tmp/cloud-init" "$ci_dir"
  else
    cat "$tmp/apt.log" >&2 || true
  fi
fi
if [ -d "$ci_py/cloudinit" ]; then
  step "cloud-init $(sed -n 's/^Version: //p' "$ci_py"/cloud_init-*.egg-info/PKG-INFO) schema --config-file user-data.yaml"
  PYTHONPATH="$ci_py" python3 -c 'import sys; from cloudinit.cmd.main import main; sys.exit(main())' \
    schema --config-file "$ud" >"$tmp/schema.log" 2>&1 ||
    { cat "$tmp/schema.log" >&2; die "cloud-init schema rejects $ud"; }
  grep -q '^Valid cloud-config' "$tmp/schema.log" || { cat "$tmp/schema.log" >&2; die "cloud-init schema said no 'Valid'"; }
else
  warn_or_die "apt-get download cloud-init failed: $ud was only checked as YAML"
fi

echo "check-ansible: all passed in $(($(date +%s) - start))s"
