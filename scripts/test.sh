#!/usr/bin/env bash
# The project's test command (README.md names it; .ci/run calls it): formatting, lints, and every
# test of the workspace. Works on a Debian machine with Rust and python3-venv: the AWS tests'
# local AWS API server (moto) is installed into .tools/ on first use (scripts/tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/tools.sh
. scripts/tools.sh

echo "== structure: import circles, layers, function length (scripts/check-structure.py)"
python3 scripts/check-structure.py --self-test
python3 scripts/check-structure.py
echo "== dependency rules of proto, sink core and durable (scripts/check-deps.sh)"
./scripts/check-deps.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (workspace: builds both binaries for the end-to-end test)"
cargo test --workspace --all-targets --locked

echo "== sink/template.yaml (scripts/check-template.sh)"
./scripts/check-template.sh
