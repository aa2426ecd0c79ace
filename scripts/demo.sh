#!/usr/bin/env bash
# Outpost on one machine: build, start a local sink and an agent that tails a sample log it
# writes plus this host's metrics, then show where the data landed.
#
#   ./scripts/demo.sh                 # runs for 15 s, data under ./demo/
#   OUTPOST_DEMO_SECONDS=60 ./scripts/demo.sh
#   OUTPOST_DEMO_DIR=/tmp/outpost-demo ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
seconds=${OUTPOST_DEMO_SECONDS:-15}
demo=${OUTPOST_DEMO_DIR:-$repo/demo}
profile=${OUTPOST_PROFILE:-release}

need=()
for tool in zstd jq sqlite3 curl; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${need[*]} (to show the data)"
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "please install: ${need[*]} (e.g. sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

echo "== building outpost-sink and outpost-agent ($profile)"
if [ "$profile" = release ]; then
  cargo build --release --locked -p outpost-sink -p outpost-agent
else
  cargo build --locked -p outpost-sink -p outpost-agent
fi
bin="$repo/target/$profile"

rm -rf "$demo"
mkdir -p "$demo/logs" "$demo/data" "$demo/state"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$demo/token"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== starting outpost-sink (data in $demo/data)"
coproc SINK { exec "$bin/outpost-sink" serve --listen 127.0.0.1:0 --data "$demo/data" \
  --token-file "$demo/token" 2>"$demo/sink.log"; }
pids+=("$SINK_PID")
read -r -t 30 first <&"${SINK[0]}" || { echo "sink did not start:"; cat "$demo/sink.log"; exit 1; }
url=${first#outpost-sink listening on }
echo "   $first"

cat >"$demo/agent.toml" <<TOML
[agent]
state_dir = "$demo/state"
[host]
interval = "2s"
[[logs]]
paths = ["$demo/logs/*.log"]
service = "demo"
[batch]
max_age = "1s"
[sink]
kind = "http"
url = "$url"
token_file = "$demo/token"
TOML
"$bin/outpost-agent" check-config --config "$demo/agent.toml"

echo "== writing a sample log: $demo/logs/app.log"
(
  i=0
  levels=(INFO INFO INFO WARN ERROR)
  while :; do
    printf '%s %s request id=%d path=/api/v1/items/%d took=%dms\n' \
      "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "${levels[i % 5]}" "$i" "$((i % 97))" "$((i % 13 * 7))" \
      >>"$demo/logs/app.log"
    i=$((i + 1))
    sleep 0.05
  done
) &
pids+=("$!")

echo "== running outpost-agent for ${seconds}s (log: $demo/agent.log)"
"$bin/outpost-agent" run --config "$demo/agent.toml" 2>"$demo/agent.log" &
agent=$!
sleep "$seconds"
kill "${pids[1]}"                  # stop the writer, let the agent catch up, then stop the agent
written=$(wc -l <"$demo/logs/app.log")
stored_lines() { find "$demo/data" -type f -name '*.ndjson.zst' -exec zstd -qdc {} + | wc -l; }
for _ in $(seq 100); do [ "$(stored_lines)" -ge "$written" ] && break; sleep 0.2; done
kill -TERM "$agent"
wait "$agent"                      # SIGTERM flushes the current batch; exit status 0

echo
echo "== where the data landed"
find "$demo/data" -type f -name '*.ndjson.zst' | sort | head -5
echo "   ($(find "$demo/data" -type f -name '*.ndjson.zst' | wc -l) log objects)"
stored=$(stored_lines)
dups=$(find "$demo/data" -type f -name '*.ndjson.zst' -exec zstd -qdc {} + | jq -r .message | sort | uniq -d | wc -l)
echo "   lines written: $written, lines stored: $stored"
echo
echo "== one stored log line: zstd -dc FILE | jq ."
first_obj=$(find "$demo/data" -type f -name '*.ndjson.zst' | sort | head -1)
zstd -qdc "$first_obj" | head -1 | jq .
echo
echo "== metrics in $demo/data/metrics.db (sqlite3)"
sqlite3 -header -column "$demo/data/metrics.db" \
  "SELECT name, count(*) AS points, round(avg(value), 1) AS avg FROM points GROUP BY name ORDER BY name LIMIT 12;"
echo
host=$(sqlite3 "$demo/data/metrics.db" "SELECT host FROM points LIMIT 1;")
echo "== the sink's API: GET /v1/metrics?host=$host&name=memory.utilization"
curl -fsS -H "Authorization: Bearer $(cat "$demo/token")" \
  "$url/v1/metrics?host=$host&name=memory.utilization" | jq -c '.points[:3]'
echo
if [ "$stored" != "$written" ] || [ "$dups" != 0 ]; then
  echo "MISMATCH: $written lines written, $stored stored, $dups duplicated" >&2
  exit 1
fi
echo "OK: every line written was stored once; data under $demo/data"
