#!/usr/bin/env bash
# The dependency rules of docs/architecture.md that cargo can check: the crates at the bottom
# of the workspace pull in no cloud SDK, server, async runtime, HTTP client or database.
#   outpost-proto      no tokio, no AWS SDK, no I/O crates (the wire format only)
#   outpost-sink-core  no aws-*, axum, hyper, tower, tokio, rusqlite, reqwest, lambda_runtime
#   outpost-durable    std and thiserror only
# Normal dependencies only (`-e normal`): tests may use anything. Exits 1 naming the crate and
# the dependency that broke a rule.
set -euo pipefail
cd "$(dirname "$0")/.."

banned='^(aws-[a-z0-9-]+|aws_[a-z0-9_]+|axum[a-z0-9-]*|hyper[a-z0-9-]*|tower[a-z0-9-]*|tokio[a-z0-9-]*|rusqlite|libsqlite3-sys|reqwest|lambda_runtime[a-z0-9_-]*|h2|rustls)$'

deps_of() {
  cargo tree --locked -p "$1" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u
}

# The check must be able to fail: the sink binary's crate does pull these in.
if ! deps_of outpost-sink | grep -Eq "$banned"; then
  echo "check-deps: the pattern matched nothing in outpost-sink's tree; the check is broken" >&2
  exit 1
fi

status=0
for crate in outpost-proto outpost-sink-core outpost-durable; do
  bad=$(deps_of "$crate" | grep -E "$banned" || true)
  if [ -n "$bad" ]; then
    echo "check-deps: $crate depends on $(echo "$bad" | tr '\n' ' ')(docs/architecture.md)" >&2
    status=1
  fi
done
allowed_durable='^(outpost-durable|thiserror|thiserror-impl|proc-macro2|quote|syn|unicode-ident)$'
extra=$(deps_of outpost-durable | grep -Ev "$allowed_durable" || true)
if [ -n "$extra" ]; then
  echo "check-deps: outpost-durable depends on $(echo "$extra" | tr '\n' ' ')(std and thiserror only)" >&2
  status=1
fi
[ "$status" = 0 ] && echo "check-deps: proto, sink core and durable are free of cloud, server, runtime and database crates"
exit "$status"
