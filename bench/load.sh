#!/usr/bin/env bash
# Load benchmark of /mutate against ../shared/bench's go-stdlib (a typical Go webhook) and deno-floor, in the same run:
#   requests/s and p50/p99 for the typical (3+1 containers) and the 40-container Pod, with wrk (HTTP/1.1, keep-alive),
#   then p99 at half of mirrorhook's measured maximum rate, wrk paced with delay() (bench/wrk-rate.lua).
# Usage: bench/load.sh [SECONDS=10] [RUNS=3] [CONNECTIONS=16]     (deno task bench:load)
# Servers are pinned to CPU 1, load generators to CPU 0. Only 127.0.0.1 is used; every run is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
secs=${1:-10}; runs=${2:-3}; conns=${3:-16}
[ -d "$shared" ] || { echo "load.sh: $shared not found (set SHARED_BENCH)" >&2; exit 2; }
for tool in wrk jq openssl taskset go; do
  command -v "$tool" >/dev/null || { echo "load.sh: needs $tool (apt-get install wrk jq openssl util-linux golang-go)" >&2; exit 2; }
done

work=$(mktemp -d -t mirrorhook-load.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A CA and a serving certificate it signs (RSA 2048, as cert-manager makes by default): both servers use the
# same pair, and the open-loop generator verifies it against the CA like an API server would.
mkdir -p "$work/cert" "$work/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 -subj "/CN=mirrorhook bench CA" \
  -addext "basicConstraints=critical,CA:TRUE" -keyout "$work/cert/ca.key" -out "$work/cert/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" -keyout "$work/cert/key.pem" -out "$work/cert/req.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$work/cert/ext"
openssl x509 -req -in "$work/cert/req.csr" -CA "$work/cert/ca.pem" -CAkey "$work/cert/ca.key" -CAcreateserial -days 2 \
  -sha256 -extfile "$work/cert/ext" -out "$work/cert/cert.pem" 2>/dev/null
cp "$work/cert/cert.pem" "$work/tls/tls.crt"
cp "$work/cert/key.pem" "$work/tls/tls.key"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
floor_port=$(free_port); go_port=$(free_port); mh_port=$(free_port); probe_port=$(free_port); sized_deno_port=$(free_port); sized_node_port=$(free_port)
# Sizes of mirrorhook's answers to the two fixtures with bench/rules.yaml (a patch, warnings, audit annotations).
small_answer=2247; large_answer=16506

# The same V8 flags as deno.json's run tasks (lib/rules/pattern.ts V8_FLAGS, then the young generation's size): serve
# refuses to start without the first ones.
v8_flags=--v8-flags=--enable-experimental-regexp-engine,--enable-experimental-regexp-engine-on-excessive-backtracks,--regexp-backtracks-before-fallback=10000,--max-semi-space-size=2

wait_ready() { # URL
  for _ in $(seq 1 100); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "load.sh: $1 did not come up" >&2; return 1
}

taskset -c 1 deno run --no-prompt --allow-net="127.0.0.1:$floor_port" --allow-read="$work/cert" \
  "$shared/servers/deno-floor/server.ts" "$floor_port" "$work/cert" 2>"$work/floor.log" &
pids+=($!)
# go-stdlib: built offline from ../shared/bench (stdlib only), same certificate, its own 11 rules (the same rewrites).
(cd "$shared/servers/go-stdlib" && GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local go build -trimpath -o "$work/go-stdlib" .)
taskset -c 1 "$work/go-stdlib" -addr "127.0.0.1:$go_port" -cert "$work/cert/cert.pem" -key "$work/cert/key.pem" \
  -rules "$shared/rules/rules.json" 2>"$work/go.log" &
pids+=($!)
taskset -c 1 deno run -P=mirrorhook "$v8_flags" main.ts serve --rules bench/rules.yaml --tls-dir "$work/tls" \
  --host 127.0.0.1 --port "$mh_port" --probe-port "$probe_port" --shutdown-delay 0 2>"$work/mirrorhook.log" &
mh_pid=$!
pids+=($mh_pid)
for transport in deno node; do
  port=$sized_deno_port; [ "$transport" = node ] && port=$sized_node_port
  TRANSPORT=$transport taskset -c 1 deno run --no-prompt --allow-net=127.0.0.1 --allow-read="$work/cert" --allow-env=TRANSPORT \
    bench/servers/floor_sized.ts "$port" "$work/cert" "$small_answer" "$large_answer" 2>>"$work/floor.log" &
  pids+=($!)
done
wait_ready "https://127.0.0.1:$floor_port/healthz"
for _ in $(seq 1 100); do curl -sk -o /dev/null "https://127.0.0.1:$go_port/" && break; sleep 0.1; done
wait_ready "https://127.0.0.1:$sized_deno_port/healthz"
wait_ready "https://127.0.0.1:$sized_node_port/healthz"
wait_ready "http://127.0.0.1:$probe_port/readyz"
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
sleep 1
rss_idle=$(rss_mb "$mh_pid")

typical=$shared/fixtures/pod-admission.json
large=$shared/fixtures/pod-admission-large.json
results=$work/results.jsonl
measure() { # NAME URL BODY
  local line
  line=$(CPUS=0 "$shared/load.sh" "$2" "$3" "$secs" "$conns" 2>>"$work/load.log")
  echo "$line" | jq -c --arg name "$1" '{name:$name} + .' | tee -a "$results" >&2
}
for run in $(seq 1 "$runs"); do
  echo "run $run/$runs" >&2
  for pod in typical large; do
    body=$typical; [ "$pod" = large ] && body=$large
    measure "floor-$pod" "https://127.0.0.1:$floor_port/mutate" "$body"
    measure "go-stdlib-$pod" "https://127.0.0.1:$go_port/mutate" "$body"
    measure "sized-deno-$pod" "https://127.0.0.1:$sized_deno_port/mutate" "$body"
    measure "sized-node-$pod" "https://127.0.0.1:$sized_node_port/mutate" "$body"
    measure "mirrorhook-$pod" "https://127.0.0.1:$mh_port/mutate" "$body"
  done
done

# Memory: mirrorhook's RSS at idle (ready, before any load) and after every admission of the runs above.
admissions=$(jq -s '[.[] | select(.name | startswith("mirrorhook-")) | .requests] | add' "$results")
jq -nc --argjson idle "$rss_idle" --argjson after "$(rss_mb "$mh_pid")" --argjson n "$admissions" \
  '{memory:"mirrorhook", rss_idle_mb:$idle, rss_after_mb:$after, admissions:$n, growth:((($after / $idle) - 1) * 1000 | round / 1000)}'

median() { jq -s --arg n "$1" --arg k "$2" '[.[] | select(.name == $n) | .[$k]] | sort | .[(length / 2 | floor)]' "$results"; }
# Ratios of mirrorhook's median requests/s to each floor's: deno-floor (../shared/bench, tiny answer), and the same
# floor answering with mirrorhook-sized responses on Deno.serve (sized-deno) and on node:https (sized-node).
for pod in typical large; do
  m=$(median "mirrorhook-$pod" rps)
  jq -nc --arg pod "$pod" --argjson m "$m" \
    --argjson f "$(median "floor-$pod" rps)" --argjson g "$(median "go-stdlib-$pod" rps)" --argjson d "$(median "sized-deno-$pod" rps)" --argjson n "$(median "sized-node-$pod" rps)" \
    --argjson mp50 "$(median "mirrorhook-$pod" p50_ms)" --argjson mp99 "$(median "mirrorhook-$pod" p99_ms)" \
    --argjson fp99 "$(median "floor-$pod" p99_ms)" --argjson dp99 "$(median "sized-deno-$pod" p99_ms)" --argjson np99 "$(median "sized-node-$pod" p99_ms)" \
    '{pod:$pod, mirrorhook_rps:$m, go_stdlib_rps:$g, floor_rps:$f, sized_deno_rps:$d, sized_node_rps:$n,
      vs_go_stdlib:(($m / $g * 1000 | round) / 1000), vs_floor:(($m / $f * 1000 | round) / 1000), vs_sized_deno:(($m / $d * 1000 | round) / 1000), vs_sized_node:(($m / $n * 1000 | round) / 1000),
      mirrorhook_p50_ms:$mp50, mirrorhook_p99_ms:$mp99, floor_p99_ms:$fp99, sized_deno_p99_ms:$dp99, sized_node_p99_ms:$np99}'
done | tee "$work/summary.jsonl"

# p99 at half of the maximum rate mirrorhook reached on the typical Pod: wrk paced with delay() (bench/wrk-rate.lua),
# 8 connections each waiting 8000/half ms between requests; the same pacing against the floor, in the same run.
max=$(median mirrorhook-typical rps)
half=$(jq -n --argjson m "$max" '($m / 2) | floor')
pace_conns=8
delay_ms=$(jq -n --argjson h "$half" --argjson c "$pace_conns" '($c * 1000 / $h) | floor')
for target in mirrorhook floor; do
  port=$mh_port; [ "$target" = floor ] && port=$floor_port
  out=$(WRK_BODY_FILE=$typical WRK_DELAY_MS=$delay_ms timeout -k 5 $((secs + 30)) taskset -c 0 \
    wrk -t1 -c"$pace_conns" -d"${secs}s" --timeout 10s --latency -s bench/wrk-rate.lua "https://127.0.0.1:$port/mutate" 2>&1)
  echo "$out" | grep '^WRK_JSON ' | sed 's/^WRK_JSON //' |
    jq -c --arg t "$target" --argjson target_rps "$half" '{target:$t, pod:"typical", paced_at_rps:$target_rps} + .'
done
