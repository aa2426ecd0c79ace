#!/usr/bin/env bash
# Cold start and large-frame ingest of the sink's Lambda function, run locally: moto (the AWS
# APIs) and `cargo lambda watch --release` (the Lambda runtime emulator) on loopback.
#
#   bench/lambda.sh [--requests 5] [--compressed-mib 4]
#
# Reports the function's init time (its own `init_ms` log line: process start to ready, the
# AWS SDK configuration and clients included), the in-process time of the ingest core's
# `prepare` on one frame, and the wall time of each POST of that frame through the Function URL
# emulation (decode, NDJSON, zstd, S3 PutObject and DynamoDB writes against moto). moto is not
# AWS: its latency is not S3's or DynamoDB's; the figures bound the function's own work.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=5 mib=4
while (($#)); do
  case $1 in
    --requests) requests=$2; shift 2 ;;
    --compressed-mib) mib=$2; shift 2 ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
. scripts/tools.sh
command -v moto_server >/dev/null && command -v cargo-lambda >/dev/null ||
  { echo "bench/lambda.sh: needs moto_server and cargo-lambda (scripts/tools.sh)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -s KILL -- "-$p" 2>/dev/null || kill -s KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

echo "== building (release)"
cargo build --release --locked -p outpost-sink --bin outpost-sink-lambda --example ingest_bench 2>&1 | tail -1

moto_port=$(free_port)
setsid moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_port "$moto_port"
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
"$(dirname "$(command -v moto_server)")/python" - <<'PY'
import boto3
boto3.client("s3").create_bucket(Bucket="outpost-bench")
boto3.client("dynamodb").create_table(
    TableName="outpost-bench", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                          {"AttributeName": "ts", "AttributeType": "N"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
               {"AttributeName": "ts", "KeyType": "RANGE"}])
PY

start_watch() {
  lambda_port=$(free_port)
  (cd sink && OUTPOST_BUCKET=outpost-bench OUTPOST_TABLE=outpost-bench OUTPOST_CLOUDWATCH_MODE=emf \
    exec setsid cargo-lambda lambda watch --release --ignore-changes -A 127.0.0.1 -P "$lambda_port" \
    >"$work/watch.log" 2>&1) &
  watch_pid=$!
  pids+=("$watch_pid")
  wait_port "$lambda_port"
}
# The emulator builds the function on its first request: build it, then start a fresh
# emulator, so that the first timed POST is a cold start (process start, init, ingest) and not
# a compilation. (Its `cargo run` still checks the build is fresh: a few hundred ms that a real
# Lambda cold start does not have.)
start_watch
curl -s -m 1800 "http://127.0.0.1:$lambda_port/lambda-url/outpost-sink-lambda/healthz" >/dev/null
kill -s KILL -- "-$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
start_watch

echo "== $requests POSTs of a ${mib} MiB frame through the Function URL emulation"
result=$(target/release/examples/ingest_bench --url "http://127.0.0.1:$lambda_port/lambda-url/outpost-sink-lambda" \
  --requests "$requests" --compressed-mib "$mib")
init=$(grep -o 'init_ms=[0-9.]*' "$work/watch.log" | head -1 | cut -d= -f2)
echo "$result" | python3 -c '
import json, sys, statistics
r = json.load(sys.stdin)
init = sys.argv[1]
print("function init (process start to ready):  %.1f ms" % float(init))
print("frame: %.2f MiB compressed, %d records, %.1f MiB of lines, %d log object(s)"
      % (r["frame_bytes"] / 2**20, r["records"], r["line_bytes"] / 2**20, r["log_objects"]))
print("prepare (decode, NDJSON, zstd) in-process: %.1f ms" % r["prepare_ms_in_process"])
ms = r["request_ms"]
print("POST through the emulator, first after a fresh start (cold: process start, init, ingest):  %.1f ms" % ms[0])
if len(ms) > 1:
    print("POST, warm: median %.1f ms, min %.1f, max %.1f (n=%d)"
          % (statistics.median(ms[1:]), min(ms[1:]), max(ms[1:]), len(ms) - 1))
' "${init:-nan}"
