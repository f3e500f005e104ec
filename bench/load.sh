#!/usr/bin/env bash
# Load benchmark of /mutate, in one invocation and one run, against:
#   go-stdlib   ../shared/bench/servers/go-stdlib: a typical Go webhook (net/http, encoding/json, 11 regex rules)
#   deno-floor  ../shared/bench/servers/deno-floor: Deno.serve, parse the body, answer a tiny AdmissionReview
#   own-floor   bench/servers/floor_sized.ts on mirrorhook's own transport, answering a constant patch of the size
#               of mirrorhook's answer to the same fixture (measured live): the best any code can do on that transport
# for the typical (3+1 containers) and the 40-container Pod: requests/s (wrk, keep-alive, 16 connections), medians of
# RUNS, one table with the ratios. Then the open-loop p99 at half of mirrorhook's maximum rate (bench/openloop, a Go
# client that schedules requests at a fixed rate and measures from the scheduled time), and memory: RSS at idle,
# after a warm-up, after 100,000 admissions (right after, and settled), and with 10,000 rules of each kind loaded
# (bench/scale.ts --json).
# Usage: bench/load.sh [SECONDS=8] [RUNS=3] [CONNECTIONS=16]     (deno task bench:load)
# Servers are pinned to CPU 1, load generators to CPU 0. Only 127.0.0.1 is used; every run is bounded in time or count.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source bench/common.sh
shared=${SHARED_BENCH:-$root/../shared/bench}
secs=${1:-8}; runs=${2:-3}; conns=${3:-16}
admissions_target=${ADMISSIONS:-100000}
own_transport=${OWN_FLOOR_TRANSPORT:-own}
[ -d "$shared" ] || { echo "load.sh: $shared not found (set SHARED_BENCH)" >&2; exit 2; }
for tool in wrk jq openssl taskset go curl python3; do
  command -v "$tool" >/dev/null || { echo "load.sh: needs $tool (apt-get install wrk jq openssl util-linux golang-go curl)" >&2; exit 2; }
done

work=$(mktemp -d -t mirrorhook-load.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { echo "load.sh: $*" >&2; }

# A CA and a serving certificate it signs: every server uses the same pair, and the open-loop client verifies it.
bench_certs "$work"

# Go programs, built offline (standard library only): the peer and the open-loop client.
gobuild "$shared/servers/go-stdlib" "$work/go-stdlib"
gobuild "$root/bench/openloop" "$work/openloop"

floor_port=$(free_port); go_port=$(free_port); mh_port=$(free_port); probe_port=$(free_port); own_port=$(free_port)
# The V8 flags and the environment of deno.json's mirrorhook task: mirrorhook runs as deployed.
v8_flags=$(task_v8_flags)
read -r -a task_env <<<"$(task_env_words)"

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

taskset -c 1 deno run --no-prompt --allow-net="127.0.0.1:$floor_port" --allow-read="$work/cert" \
  "$shared/servers/deno-floor/server.ts" "$floor_port" "$work/cert" 2>"$work/floor.log" &
pids+=($!)
taskset -c 1 "$work/go-stdlib" -addr "127.0.0.1:$go_port" -cert "$work/cert/cert.pem" -key "$work/cert/key.pem" \
  -rules "$shared/rules/rules.json" 2>"$work/go.log" &
pids+=($!)
env "${task_env[@]}" taskset -c 1 deno run -P=mirrorhook "$v8_flags" main.ts serve --rules bench/rules.yaml --tls-dir "$work/tls" \
  --host 127.0.0.1 --port "$mh_port" --probe-port "$probe_port" --shutdown-delay 0 2>"$work/mirrorhook.log" &
mh_pid=$!
pids+=($mh_pid)
wait_up "http://127.0.0.1:$probe_port/readyz"
wait_up "https://127.0.0.1:$floor_port/healthz"
wait_up "https://127.0.0.1:$go_port/"

typical=$shared/fixtures/pod-admission.json
large=$shared/fixtures/pod-admission-large.json
# The size of mirrorhook's answer to each fixture, so the own-transport floor answers exactly as many bytes.
answer_bytes() { curl -sk --cacert "$work/cert/ca.pem" -H 'content-type: application/json' --data-binary "@$1" \
  -o /dev/null -w '%{size_download}' "https://127.0.0.1:$mh_port/mutate"; }
small_answer=$(answer_bytes "$typical"); large_answer=$(answer_bytes "$large")
TRANSPORT=$own_transport taskset -c 1 deno run --no-prompt --allow-net=127.0.0.1 --allow-read="$work/cert" \
  --allow-env=TRANSPORT bench/servers/floor_sized.ts "$own_port" "$work/cert" "$small_answer" "$large_answer" \
  2>"$work/own-floor.log" &
pids+=($!)
wait_up "https://127.0.0.1:$own_port/healthz"
say "answers of mirrorhook: typical $small_answer bytes, large $large_answer bytes; own floor on transport '$own_transport'"

openloop() { # URL BODY ARGS...
  local url=$1 body=$2; shift 2
  timeout -k 5 660 taskset -c 0 "$work/openloop" -url "$url" -body "$body" -ca "$work/cert/ca.pem" "$@"
}
sent=0 # admissions mirrorhook has answered so far
# RSS is read settled: after SETTLE (45) seconds without load, as bench/scale.ts waits (V8's memory reducer runs 30-36 s
# after the last activity, the pattern screening worker stops after 10 s idle), so what is compared is what the server
# holds, not garbage yet to go.
settle=${SETTLE:-45}
sleep "$settle"
rss_idle=$(rss_mb "$mh_pid")
# The warm-up, 10,000 typical and 2,000 40-container admissions, then one wrk round of each Pod like the measured ones:
# the first admissions grow RSS once (compiled code, the young generation at its full size, and the TLS layer's buffers
# for 99 KB bodies, which stay in the C heap as a high-water mark), so growth is measured from there. The C heap's mark
# depends on how hard the 99 KB bodies come: 2,000 of them from the Go client left it ~50 MB below where the first wrk
# round of 40-container Pods takes it, and where the next rounds leave it (+4 % more for three more rounds).
for body in "$typical" "$large"; do
  count=10000; [ "$body" = "$large" ] && count=2000
  warm=$(openloop "https://127.0.0.1:$mh_port/mutate" "$body" -count "$count" -conns "$conns")
  sent=$((sent + $(echo "$warm" | jq .requests)))
done
for body in "$typical" "$large"; do
  warm=$(CPUS=0 "$shared/load.sh" "https://127.0.0.1:$mh_port/mutate" "$body" "$secs" "$conns" 2>>"$work/load.log") ||
    { say "warm-up failed"; tail -5 "$work/load.log" >&2; exit 1; }
  sent=$((sent + $(echo "$warm" | jq '.requests + .non2xx')))
done
sleep 1
rss_warm=$(rss_mb "$mh_pid")
warm_sent=$sent

results=$work/results.jsonl
measure() { # NAME URL BODY
  local line
  line=$(CPUS=0 "$shared/load.sh" "$2" "$3" "$secs" "$conns" 2>>"$work/load.log") || { say "$1 failed"; tail -5 "$work/load.log" >&2; exit 1; }
  echo "$line" | jq -c --arg name "$1" '{name:$name} + .' | tee -a "$results" >&2
}
for run in $(seq 1 "$runs"); do
  say "run $run/$runs"
  for pod in typical large; do
    body=$typical; [ "$pod" = large ] && body=$large
    measure "mirrorhook-$pod" "https://127.0.0.1:$mh_port/mutate" "$body"
    measure "go-stdlib-$pod" "https://127.0.0.1:$go_port/mutate" "$body"
    measure "own-floor-$pod" "https://127.0.0.1:$own_port/mutate" "$body"
    measure "deno-floor-$pod" "https://127.0.0.1:$floor_port/mutate" "$body"
  done
done
sent=$((sent + $(jq -s '[.[] | select(.name | startswith("mirrorhook-")) | .requests + .non2xx] | add' "$results")))

median() { jq -s --arg n "$1" --arg k "$2" '[.[] | select(.name == $n) | .[$k]] | sort | .[(length / 2 | floor)]' "$results"; }
summary=$work/summary.jsonl
for pod in typical large; do
  jq -nc --arg pod "$pod" --argjson m "$(median "mirrorhook-$pod" rps)" --argjson g "$(median "go-stdlib-$pod" rps)" \
    --argjson o "$(median "own-floor-$pod" rps)" --argjson f "$(median "deno-floor-$pod" rps)" \
    --argjson mp99 "$(median "mirrorhook-$pod" p99_ms)" --argjson gp99 "$(median "go-stdlib-$pod" p99_ms)" \
    '{pod:$pod, mirrorhook_rps:$m, go_stdlib_rps:$g, own_floor_rps:$o, deno_floor_rps:$f,
      vs_go_stdlib:(($m / $g * 100 | round) / 100), vs_own_floor:(($m / $o * 100 | round) / 100),
      vs_deno_floor:(($m / $f * 100 | round) / 100), mirrorhook_p99_ms:$mp99, go_stdlib_p99_ms:$gp99}'
done >"$summary"

# Open loop at half of mirrorhook's maximum rate on the typical Pod, the same schedule against the own floor.
half=$(jq -n --argjson m "$(median mirrorhook-typical rps)" '($m / 2) | floor')
paced=$work/paced.jsonl
# RUNS rounds, the two targets alternating, so both see the same machine; the table gives each target's median p99.
for run in $(seq 1 "$runs"); do
  for target in mirrorhook own-floor; do
    port=$mh_port; [ "$target" = own-floor ] && port=$own_port
    openloop "https://127.0.0.1:$port/mutate" "$typical" -rate "$half" -duration "${secs}s" -conns "$conns" |
      jq -c --arg t "$target" --argjson run "$run" '{target:$t, pod:"typical", run:$run} + .' | tee -a "$paced" >&2
  done
done
sent=$((sent + $(jq -s '[.[] | select(.target == "mirrorhook") | .requests + .non2xx] | add' "$paced")))

# Memory after 100,000 admissions since the warm-up: top up with a fixed count of typical ones.
if [ $((sent - warm_sent)) -lt "$admissions_target" ]; then
  top=$(openloop "https://127.0.0.1:$mh_port/mutate" "$typical" -count $((admissions_target - sent + warm_sent)) -conns "$conns")
  sent=$((sent + $(echo "$top" | jq .requests)))
fi
sleep 1
rss_after=$(rss_mb "$mh_pid")
sleep "$settle"
rss_settled=$(rss_mb "$mh_pid")
memory=$(jq -nc --argjson idle "$rss_idle" --argjson warm "$rss_warm" --argjson after "$rss_after" \
  --argjson settled "$rss_settled" --argjson n "$((sent - warm_sent))" \
  '{rss_idle_mb:$idle, rss_warm_mb:$warm, rss_after_mb:$after, rss_after_settled_mb:$settled, admissions:$n,
    growth_settled:((($settled / $idle) - 1) * 1000 | round / 1000), growth_vs_warm:((($after / $warm) - 1) * 1000 | round / 1000)}')
echo "$memory" >&2
# RSS of a server with one rule and with 10,000 rules of each kind, settled (bench/scale.ts --json: one line per case).
rules_rss=$(SCALE_RUNS=1 deno run -A bench/scale.ts --json idle exact-10k prefix-10k match-10k 2>>"$work/scale.log" || true)

# One table.
{
  echo
  echo "| Pod | mirrorhook | go-stdlib | own-transport floor | deno-floor | × go-stdlib | × own floor | p99 mirrorhook / go (ms) |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  jq -r '"| \(.pod) | \(.mirrorhook_rps) | \(.go_stdlib_rps) | \(.own_floor_rps) | \(.deno_floor_rps) | \(.vs_go_stdlib) | \(.vs_own_floor) | \(.mirrorhook_p99_ms) / \(.go_stdlib_p99_ms) |"' "$summary"
  echo
  echo "Requests/s, medians of $runs runs of ${secs} s, $conns connections; server on CPU 1, wrk on CPU 0."
  echo
  echo "| open loop, typical Pod, at $half req/s | p50 ms | p99 ms | max ms | answered | errors | late sends |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  jq -r '"| \(.target) run \(.run) | \(.p50_ms) | \(.p99_ms) | \(.max_ms) | \(.requests) | \(.errors + .non2xx) | \(.late) |"' "$paced"
  jq -r -s 'group_by(.target) | .[] | (map(.p99_ms) | sort | .[length / 2 | floor]) as $p99 |
    (map(.p50_ms) | sort | .[length / 2 | floor]) as $p50 |
    "| **\(.[0].target), median of \(length)** | \($p50) | **\($p99)** | | | | |"' "$paced"
  echo
  echo "$memory" | jq -r '"Memory (RSS, bench/rules.yaml): idle \(.rss_idle_mb) MB (settled); under load: after the warm-up (10,000 typical and 2,000 40-container admissions, then one wrk round of each) \(.rss_warm_mb) MB, after \(.admissions) more admissions \(.rss_after_mb) MB (\(.growth_vs_warm * 100 | round) % more); settled after them \(.rss_after_settled_mb) MB: growth \(.growth_settled * 100 | round) % since idle."'
  if [ -n "$rules_rss" ]; then
    echo "$rules_rss" | jq -r -s '"Settled RSS (bench/scale.ts): " + (map("\(.rules) \(.kind) \(.rss_mb) MB") | join(", ")) + "."'
  else
    echo "With 10,000 rules: not measured (bench/scale.ts failed)."
  fi
} | tee "$work/table.md"
jq -c . "$summary"
