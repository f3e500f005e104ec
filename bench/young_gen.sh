#!/usr/bin/env bash
# Young-generation size vs CPU and memory: for each --max-semi-space-size, the server's CPU time per admission on the
# typical and the 40-container Pod, and its RSS after each load and 15 s later; settings interleaved within each run.
# Usage: bench/young_gen.sh [RUNS=3] [SECONDS=6] [SEMI...=2 4 8 0]     (0: V8's default)
# Server pinned to CPU 1, wrk (../shared/bench/load.sh) to CPU 0; 127.0.0.1 only; every load bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
runs=${1:-3}; secs=${2:-6}; shift $(($# < 2 ? $# : 2)); semis=("$@"); [ ${#semis[@]} -gt 0 ] || semis=(2 4 8 0)
[ -x "$shared/load.sh" ] || { echo "young_gen.sh: $shared/load.sh not found (set SHARED_BENCH)" >&2; exit 2; }
work=$(mktemp -d -t mirrorhook-younggen.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, in 1/100 s, every thread
rss() { awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
engine=--enable-experimental-regexp-engine,--enable-experimental-regexp-engine-on-excessive-backtracks,--regexp-backtracks-before-fallback=10000
for run in $(seq 1 "$runs"); do
  for semi in "${semis[@]}"; do
    flags=$engine; [ "$semi" != 0 ] && flags="$flags,--max-semi-space-size=$semi"
    port=$(free_port); probe=$(free_port)
    taskset -c 1 deno run -P=mirrorhook "--v8-flags=$flags" main.ts serve --rules bench/rules.yaml --tls-dir "$work" \
      --host 127.0.0.1 --port "$port" --probe-port "$probe" --shutdown-delay 0 --log-level error 2>"$work/server.log" &
    pid=$!
    for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$probe/readyz" && break; sleep 0.1; done
    CHECK=0 CPUS=0 "$shared/load.sh" "https://127.0.0.1:$port/mutate" "$shared/fixtures/pod-admission.json" 2 16 \
      >/dev/null 2>&1
    line="{\"run\":$run,\"semi\":$semi,\"idle_rss_mb\":$(rss "$pid")"
    for pod in typical large; do
      body=$shared/fixtures/pod-admission.json; [ "$pod" = large ] && body=$shared/fixtures/pod-admission-large.json
      before=$(ticks "$pid")
      result=$(CHECK=0 CPUS=0 "$shared/load.sh" "https://127.0.0.1:$port/mutate" "$body" "$secs" 16 2>/dev/null)
      used=$(($(ticks "$pid") - before))
      line="$line,\"${pod}_rps\":$(echo "$result" | jq .rps),\"${pod}_cpu_us\":$(echo "$result" |
        jq --argjson t "$used" '($t * 10000 / .requests) | round'),\"${pod}_rss_mb\":$(rss "$pid")"
    done
    sleep 15
    echo "$line,\"settled_15s_rss_mb\":$(rss "$pid")}"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  done
done
