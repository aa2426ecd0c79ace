#!/usr/bin/env bash
# Sourced by scripts/test.sh (and so by .ci/run): make the tools the AWS tests need available,
# installing them once into a virtualenv under .tools/ (not committed):
#   moto_server  (pip `moto[server]`): the local AWS API server the AWS tests start.
# Needs python3 with the venv module (Debian: apt-get install python3-venv). When it cannot
# install them it says so; the AWS tests then skip, except under CI=true where they fail.
tools_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools"
tools_venv="$tools_dir/venv"
MOTO_SPEC='moto[server]==5.2.5'

outpost_tools() {
  if [ -x "$tools_venv/bin/moto_server" ]; then
    export PATH="$tools_venv/bin:$PATH"
    return 0
  fi
  if command -v moto_server >/dev/null; then
    return 0
  fi
  echo "== installing $MOTO_SPEC into $tools_venv (once)"
  if ! python3 -m venv "$tools_venv" >/dev/null 2>&1; then
    echo "warning: cannot create a Python virtualenv (Debian: apt-get install python3-venv);" \
      "the AWS tests will be skipped (or fail under CI=true)" >&2
    rm -rf "$tools_venv"
    return 0
  fi
  if ! "$tools_venv/bin/pip" install -q --disable-pip-version-check "$MOTO_SPEC"; then
    echo "warning: pip could not install $MOTO_SPEC; the AWS tests will be skipped" \
      "(or fail under CI=true)" >&2
    rm -rf "$tools_venv"
    return 0
  fi
  export PATH="$tools_venv/bin:$PATH"
}
outpost_tools
