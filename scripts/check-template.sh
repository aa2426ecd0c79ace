#!/usr/bin/env bash
# Checks of the AWS SAM template sink/template.yaml (docs/deploy.md), run by scripts/test.sh:
#   1. cfn-lint, with no rule ignored;
#   2. scripts/template_test.py: the SAM transform done offline (samtranslator) and the security
#      properties of its output; the output deployed to a local moto_server (Kinesis off and
#      on); every alarm re-created in moto and read back.
# Uses the venv of scripts/tools.sh (cfn-lint, aws-sam-translator, moto[server], boto3). When it
# is missing this says so and skips, except under CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/tools.sh
. scripts/tools.sh
py="$tools_venv/bin/python"
if ! [ -x "$tools_venv/bin/cfn-lint" ] || ! "$py" -c 'import samtranslator, moto, boto3' 2>/dev/null; then
  if [ "${CI:-}" = true ]; then
    echo "check-template: cfn-lint, aws-sam-translator or moto is missing from $tools_venv" >&2
    exit 1
  fi
  echo "warning: check-template skipped: cfn-lint, aws-sam-translator or moto is missing" >&2
  exit 0
fi
echo "== cfn-lint sink/template.yaml"
"$tools_venv/bin/cfn-lint" sink/template.yaml
echo "== sink/template.yaml: SAM transform, moto deployment, alarms (scripts/template_test.py)"
"$py" -W error::ResourceWarning scripts/template_test.py
