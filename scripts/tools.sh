#!/usr/bin/env bash
# Sourced by scripts/test.sh (and so by .ci/run): make the tools the AWS tests need available,
# installing them once into a virtualenv under .tools/ (not committed):
#   moto_server   (pip `moto[server]`): the local AWS API server the AWS tests start;
#   cargo-lambda  (pip `cargo-lambda`, with `ziglang` for `cargo lambda build`): the local
#                 Lambda runtime emulator the Lambda front's tests run the function in;
#   samtranslator (pip `aws-sam-translator`): the SAM transform, offline, for
#                 scripts/check-template.sh (cfn-lint comes with moto[server]).
# Needs python3 with the venv module (Debian: apt-get install python3-venv). When it cannot
# install them it says so; the AWS tests then skip, except under CI=true where they fail.
tools_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools"
tools_venv="$tools_dir/venv"
# Pinned: the versions the tests were written against (docs/aws.md).
tools_specs=('moto[server]==5.2.5' 'cargo-lambda==1.9.2' 'ziglang==0.17.1' 'aws-sam-translator==1.115.0')

outpost_tools() {
  local stamp="$tools_venv/.installed"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${tools_specs[*]}" ]; then
    export PATH="$tools_venv/bin:$PATH"
    return 0
  fi
  echo "== installing ${tools_specs[*]} into $tools_venv (once)"
  if ! { [ -x "$tools_venv/bin/pip" ] || python3 -m venv "$tools_venv" >/dev/null 2>&1; }; then
    echo "warning: cannot create a Python virtualenv (Debian: apt-get install python3-venv);" \
      "the AWS tests will be skipped (or fail under CI=true)" >&2
    rm -rf "$tools_venv"
    return 0
  fi
  if ! "$tools_venv/bin/pip" install -q --disable-pip-version-check "${tools_specs[@]}"; then
    echo "warning: pip could not install ${tools_specs[*]}; the AWS tests will be skipped" \
      "(or fail under CI=true)" >&2
    return 0
  fi
  echo "${tools_specs[*]}" >"$stamp"
  export PATH="$tools_venv/bin:$PATH"
}
outpost_tools
