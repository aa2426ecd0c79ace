#!/usr/bin/env bash
# End-to-end benchmark: outpost-agent shipping to a local outpost-sink, in three phases.
#
#   bench/e2e.sh [--size 1GiB] [--live-seconds 60] [--idle-seconds 60] [--rate 10000]
#                [--results FILE] [--perf DIR] [--keep] [--no-multiline] [--catchup-timeout 3600]
#                [--catchup-sink discard|local] [--agent-env unit|none] [--zstd-level N]
#                [--idle-files 10] [--outage-seconds 0] [--agent-bin PATH]
#
# 1. catch-up: a generated log of --size bytes (nginx, JSON and Java lines with stack traces),
#    read from the beginning; time until the agent's checkpoint reaches the end of the file (all
#    of it spooled), and until the spool is drained (all of it delivered). Beside it, on the same
#    file: `cat FILE >/dev/null` and `zstd -T1 -c -3 FILE >/dev/null`. The agent ships to a
#    discard endpoint (`e2e.py discard`: reads each request, answers 200, stores nothing) unless
#    --catchup-sink local, so that the sink's CPU does not compete with the agent's.
# The agent is built with the `dist` profile (what the packages ship) and runs with the
# environment of systemd/outpost-agent.service (its glibc malloc tunables), unless
# --agent-env none.
# 2. live: a writer appends --rate lines/s in bursts every 10 ms for --live-seconds (after a 2 s
#    warm-up); the agent's CPU and RSS over that window.
# 2b. outage (with --outage-seconds N): the live writer again, and 10 s into the window the
#    sink is frozen (SIGSTOP) for N s, then resumed: the agent's RSS and spool bytes every
#    second before, during and after, and the time to deliver everything.
# 3. idle: host sampling every 10 s and --idle-files quiet files (10; 2000 for "thousands of
#    files"), for --idle-seconds; CPU and RSS.
# A phase with size or seconds 0 is skipped. Everything happens in a temporary directory
# (removed at the end unless --keep); the results are written as JSON to --results (default
# ./e2e-results.json) and a summary table is printed. --perf DIR profiles each phase's agent
# with `perf record -e cpu-clock` (which costs CPU: its figures are then not the reference ones)
# and writes the top of `perf report` to DIR/PHASE.txt. Every agent follows its files with
# `[logs.multiline] start_pattern = '^[0-9{]'` (default flush_timeout), unless --no-multiline.
# --agent-bin PATH measures that agent binary instead of building the dist profile's (to compare
# builds; the results' meta names it).
# Details in docs/performance.md.
set -euo pipefail
export LC_ALL=C  # a decimal point in $EPOCHREALTIME, whatever the caller's locale
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
helper=("python3" "$here/e2e.py")

size=1GiB live_seconds=60 idle_seconds=60 rate=10000 results=e2e-results.json idle_files=10 outage_seconds=0
agent_bin="" perf_dir="" keep=0 catchup_timeout=3600 multiline=1 catchup_sink=discard agent_env_from=unit zstd_level=""
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit "${1:-0}"; }
while (($#)); do
  case $1 in
    --size) size=$2; shift 2 ;;
    --live-seconds) live_seconds=$2; shift 2 ;;
    --idle-seconds) idle_seconds=$2; shift 2 ;;
    --idle-files) idle_files=$2; shift 2 ;;
    --outage-seconds) outage_seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --results) results=$2; shift 2 ;;
    --perf) perf_dir=$2; shift 2 ;;
    --agent-bin) agent_bin=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    --catchup-timeout) catchup_timeout=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-multiline) multiline=0; shift ;;
    --catchup-sink) catchup_sink=$2; shift 2 ;;
    --agent-env) agent_env_from=$2; shift 2 ;;
    --zstd-level) zstd_level=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "e2e.sh: unknown argument $1" >&2; usage 2 ;;
  esac
done
bytes() { # 1GiB, 512MiB, 64KiB, 1GB, 1MB, or a bare number of bytes
  local v=$1 n u
  n=${v%%[!0-9]*} u=${v#"$n"}
  [ -n "$n" ] || { echo "e2e.sh: bad size $v" >&2; exit 2; }
  case $u in
    "") echo "$n" ;; KiB) echo $((n << 10)) ;; MiB) echo $((n << 20)) ;; GiB) echo $((n << 30)) ;;
    KB) echo $((n * 1000)) ;; MB) echo $((n * 1000000)) ;; GB) echo $((n * 1000000000)) ;;
    *) echo "e2e.sh: bad size $v" >&2; exit 2 ;;
  esac
}
size_bytes=$(bytes "$size")
case $catchup_sink in discard | local) ;; *) echo "e2e.sh: --catchup-sink is discard or local" >&2; exit 2 ;; esac
case $agent_env_from in unit | none) ;; *) echo "e2e.sh: --agent-env is unit or none" >&2; exit 2 ;; esac
case $results in /*) ;; *) results="$PWD/$results" ;; esac
if [ -n "$perf_dir" ]; then
  mkdir -p "$perf_dir" && perf_dir=$(cd "$perf_dir" && pwd)
  command -v perf >/dev/null || { echo "e2e.sh: --perf needs perf" >&2; exit 1; }
fi
for tool in cargo python3 zstd getconf; do
  command -v "$tool" >/dev/null || { echo "e2e.sh: $tool is needed" >&2; exit 1; }
done
clk_tck=$(getconf CLK_TCK)

echo "== building outpost-agent (profile dist, as packaged) and outpost-sink (release)"
(cd "$repo" && { [ -n "$agent_bin" ] || cargo build --profile dist --locked -p outpost-agent; } &&
  cargo build --release --locked -p outpost-sink --bin outpost-sink)
target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

work=$(mktemp -d "${TMPDIR:-/tmp}/outpost-e2e.XXXXXX")
work=$(cd "$work" && pwd -P)  # the agent records resolved paths
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if ((keep)); then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# Copies: a build started by someone else during the run cannot change what is measured.
mkdir -p "$work/bin"
cp "${agent_bin:-$target_dir/dist/outpost-agent}" "$work/bin/outpost-agent"
cp "$target_dir/release/outpost-sink" "$work/bin/"
# The agent runs with the environment its systemd unit gives it (glibc malloc tunables).
unit_env=""
[ "$agent_env_from" = unit ] && unit_env=$(sed -n 's/^Environment=//p' "$repo/systemd/outpost-agent.service")
agent_env=(env)
for kv in $unit_env; do agent_env+=("$kv"); done
bin=$work/bin

git_rev=$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(cd "$repo" && git status --porcelain -- agent proto sink Cargo.toml Cargo.lock 2>/dev/null |
  awk '{print $2}' | paste -sd, -)
"${helper[@]}" meta \
  "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "command=bench/e2e.sh --size $size --live-seconds $live_seconds --idle-seconds $idle_seconds --idle-files $idle_files --outage-seconds $outage_seconds --rate $rate --catchup-sink $catchup_sink --agent-env $agent_env_from${zstd_level:+ --zstd-level $zstd_level}$( ((multiline)) || echo ' --no-multiline')" \
  "multiline=$multiline" \
  "nproc=$(nproc)" \
  "cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)" \
  "mem_total=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" \
  "kernel=$(uname -r)" \
  "rustc=$(rustc --version 2>/dev/null)" \
  "zstd=$(zstd --version 2>/dev/null | grep -o "v[0-9.]*" | head -1)" \
  "profile=agent: ${agent_bin:-dist ([profile.dist] of Cargo.toml)}; sink: release" \
  "agent_env=$unit_env" \
  "git_rev=$git_rev" "uncommitted_changes=$git_dirty" \
  "clk_tck=$clk_tck" "loadavg_at_start=$(cut -d' ' -f1-3 /proc/loadavg)" >"$work/meta.json"

echo "== starting outpost-sink"
mkdir -p "$work/sink"
coproc SINK { exec "$bin/outpost-sink" serve --listen 127.0.0.1:0 --data "$work/sink" 2>"$work/sink.log"; }
sink_pid=$SINK_PID
pids+=("$sink_pid")
read -r -t 30 first <&"${SINK[0]}" || { echo "sink did not start:" >&2; cat "$work/sink.log" >&2; exit 1; }
url=${first#outpost-sink listening on }
echo "   $first"

# agent_config NAME HOST_SECTION LOG_GLOB [URL]: the config of one phase's agent.
agent_config() {
  mkdir -p "$work/$1/state"
  cat >"$work/$1/agent.toml" <<TOML
[agent]
id = "e2e-$1"
hostname = "e2e-bench"
state_dir = "$work/$1/state"
[host]
$2
[[logs]]
paths = ["$3"]
service = "e2e"
read_from = "beginning"
$multiline_section
$batch_section
[spool]
max_bytes = "2GiB"
[sink]
kind = "http"
url = "${4:-$url}"
TOML
  "$bin/outpost-agent" check-config --config "$work/$1/agent.toml"
}
batch_section=""
[ -n "$zstd_level" ] && batch_section=$'[batch]\nzstd_level = '"$zstd_level"
multiline_section=""
((multiline)) && multiline_section=$'[logs.multiline]\nstart_pattern = \'^[0-9{]\''
agent_pid="" perf_pid=""
start_agent() {
  t0=$EPOCHREALTIME
  if [ -z "$perf_dir" ]; then
    "${agent_env[@]}" "$bin/outpost-agent" run --config "$work/$1/agent.toml" 2>"$work/$1-agent.log" &
    agent_pid=$!
  else
    # Under perf from its first instruction (perf record -p would miss threads started later).
    perf record -q -e cpu-clock -o "$work/$1.perf.data" -- \
      "${agent_env[@]}" "$bin/outpost-agent" run --config "$work/$1/agent.toml" 2>"$work/$1-agent.log" &
    perf_pid=$!
    pids+=("$perf_pid")
    agent_pid=""
    for _ in $(seq 200); do
      agent_pid=$(pgrep -P "$perf_pid" || true)
      [ -n "$agent_pid" ] && break
      sleep 0.05
    done
    [ -n "$agent_pid" ] || { echo "e2e.sh: the agent did not start under perf" >&2; exit 1; }
  fi
  pids+=("$agent_pid")
}
stop_agent() {
  if [ -n "$perf_pid" ]; then
    kill -TERM "$agent_pid"
    wait "$perf_pid" || true
    for sort in comm dso dso,symbol comm,symbol; do
      perf report -i "$work/$1.perf.data" --stdio --sort "$sort" --percent-limit 0.5 2>/dev/null |
        grep -v '^$' | cut -c1-160 | sed 's/ *$//'
    done >"$perf_dir/$1.txt"
    echo "   perf report: $perf_dir/$1.txt"
    perf_pid=""
    return
  fi
  kill -TERM "$agent_pid"
  local rc=0
  wait "$agent_pid" || rc=$?
  ((rc == 0)) || echo "   the agent exited with status $rc (log: $1-agent.log)" >&2
}

if ((size_bytes > 0)); then
  echo "== catch-up: generating $size of logs"
  mkdir -p "$work/catchup-logs"
  "${helper[@]}" gen "$work/catchup-logs/app.log" --size "$size_bytes" >"$work/gen.json"
  cat "$work/gen.json"
  echo "== catch-up: references (cat, zstd -T1 -${zstd_level:-3})"
  "${helper[@]}" refs "$work/catchup-logs/app.log" --level "${zstd_level:-3}" >"$work/refs.json"
  cat "$work/refs.json"
  catchup_url=$url catchup_sink_pid=$sink_pid
  if [ "$catchup_sink" = discard ]; then
    "${helper[@]}" discard >"$work/discard.out" 2>&1 &
    catchup_sink_pid=$!
    pids+=("$catchup_sink_pid")
    first=""
    for _ in $(seq 300); do
      first=$(head -1 "$work/discard.out")
      [ -n "$first" ] && break
      sleep 0.1
    done
    [ -n "$first" ] || { echo "discard sink did not start" >&2; cat "$work/discard.out" >&2; exit 1; }
    catchup_url=${first#discard sink listening on }
    echo "   $first"
  fi
  agent_config catchup "enabled = false" "$work/catchup-logs/app.log" "$catchup_url"
  read -r lines records < <(python3 -c 'import json, sys; g = json.load(open(sys.argv[1])); print(g["lines"], g["records"])' "$work/gen.json")
  echo "== catch-up: the agent reads $size from the beginning"
  start_agent catchup
  "${helper[@]}" catchup --pid "$agent_pid" --sink-pid "$catchup_sink_pid" --state "$work/catchup/state" \
    --file "$work/catchup-logs/app.log" --t0 "$t0" --lines "$lines" --records "$records" \
    --clk-tck "$clk_tck" --timeout "$catchup_timeout" >"$work/catchup.json"
  stop_agent catchup
  rm -f "$work/catchup-logs/app.log"
fi

if (($(printf '%.0f' "$live_seconds") > 0)); then
  echo "== live: $rate lines/s for ${live_seconds}s (after a 2 s warm-up)"
  mkdir -p "$work/live-logs"
  : >"$work/live-logs/app.log"
  agent_config live 'interval = "10s"' "$work/live-logs/*.log"
  start_agent live
  "${helper[@]}" live --pid "$agent_pid" --sink-pid "$sink_pid" --state "$work/live/state" \
    --file "$work/live-logs/app.log" --rate "$rate" --seconds "$live_seconds" \
    --clk-tck "$clk_tck" >"$work/live.json"
  stop_agent live
fi

if (($(printf '%.0f' "$outage_seconds") > 0)); then
  echo "== outage: $rate lines/s for ${outage_seconds}s + 20 s; the sink frozen for ${outage_seconds}s, 10 s into it"
  mkdir -p "$work/outage-logs"
  : >"$work/outage-logs/app.log"
  agent_config outage 'interval = "10s"' "$work/outage-logs/*.log"
  start_agent outage
  "${helper[@]}" live --pid "$agent_pid" --sink-pid "$sink_pid" --state "$work/outage/state" \
    --file "$work/outage-logs/app.log" --rate "$rate" --seconds "$(($(printf '%.0f' "$outage_seconds") + 20))" \
    --outage-at 10 --outage-seconds "$outage_seconds" --clk-tck "$clk_tck" >"$work/outage.json"
  stop_agent outage
fi

if (($(printf '%.0f' "$idle_seconds") > 0)); then
  echo "== idle: host sampling every 10 s, $idle_files quiet files, ${idle_seconds}s"
  mkdir -p "$work/idle-logs"
  for i in $(seq 1 $((idle_files < 10 ? idle_files : 10))); do
    "${helper[@]}" gen "$work/idle-logs/app$i.log" --size 20000 --seed "$i" >/dev/null
  done
  # More files: copies of those ten (each its own inode, so its own file to the agent).
  for ((i = 11; i <= idle_files; i++)); do
    cp "$work/idle-logs/app$(((i - 1) % 10 + 1)).log" "$work/idle-logs/app$i.log"
  done
  agent_config idle 'interval = "10s"' "$work/idle-logs/*.log"
  start_agent idle
  "${helper[@]}" idle --pid "$agent_pid" --state "$work/idle/state" --dir "$work/idle-logs" \
    --seconds "$idle_seconds" --clk-tck "$clk_tck" >"$work/idle.json"
  stop_agent idle
fi

echo
"${helper[@]}" report --work "$work" --out "$results"
