#!/usr/bin/env bash
# Open-loop tails per rate: mirrorhook, the own-transport floor (bench/servers/floor_sized.ts) and go-stdlib
# (../shared/bench), servers started as bench/load.sh starts them (task environment and V8 flags, CPU 1), each warmed
# with 10,000 typical admissions, then ROUNDS rounds in which every target gets SECS seconds of bench/openloop at each
# rate (CPU 0, 16 connections, -timeline), interleaved so all see the same machine. Prints one JSON line per run (with
# the server's CPU time, all threads) and a table of medians: p99 and CPU per admission. go-stdlib is skipped above
# GO_MAX_RATE (2000: beyond it, it saturates on a 2-core machine). Timelines stay in OUT (one file per run).
# Usage: bench/tail.sh OUT RATE...      e.g. bench/tail.sh /tmp/tail 1000 4300
# Env: SHARED_BENCH (../shared/bench; in a worktree give it), ROUNDS (3), SECS (10), TARGETS ("mirrorhook own-floor
# go-stdlib"; mirrorhook@REF is git REF's tree, checked out in a temporary worktree, for before/after pairs in one run;
# any NAME-floor is floor_sized.ts with TRANSPORT=NAME, e.g. tls-floor: node:tls and http1.ts framing, no limits),
# MH_V8 (V8 flags added to every mirrorhook target, e.g. --trace-gc, whose output goes to OUT/TARGET.out), MH_ARGS
# (serve options added, e.g. "--log-level warning").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source bench/common.sh
shared=${SHARED_BENCH:-$root/../shared/bench}
out=${1:?usage: bench/tail.sh OUT RATE...}; shift
[ $# -gt 0 ] || { echo "tail.sh: give at least one rate" >&2; exit 2; }
mkdir -p "$out"
work=$(mktemp -d -t mirrorhook-tail.XXXXXX)
pids=()
trees=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for tree in "${trees[@]}"; do git -C "$root" worktree remove --force "$tree" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
bench_certs "$work"
gobuild "$shared/servers/go-stdlib" "$work/go-stdlib"
gobuild "$root/bench/openloop" "$work/openloop"
go_port=$(free_port)
read -r -a mh_args <<<"${MH_ARGS:-}"
targets=${TARGETS:-mirrorhook own-floor go-stdlib}
typical=$shared/fixtures/pod-admission.json
declare -A port pid
mh_port=
# mirrorhook (this tree) or mirrorhook@REF (git REF, checked out in a temporary worktree): each as its tree's deno.json
# `mirrorhook` task runs it (environment and V8 flags), on this tree's bench/rules.yaml.
for t in $targets; do
  [[ $t == mirrorhook || $t == mirrorhook@* ]] || continue
  tree=$root
  if [[ $t == mirrorhook@* ]]; then
    tree=$work/tree-${#trees[@]}
    git worktree add --detach "$tree" "${t#mirrorhook@}" >/dev/null 2>&1 ||
      { echo "tail.sh: cannot check out ${t#mirrorhook@}" >&2; exit 2; }
    trees+=("$tree")
  fi
  v8_flags=$(task_v8_flags "$tree/deno.json")${MH_V8:+,$MH_V8}
  read -r -a task_env <<<"$(task_env_words "$tree/deno.json")"
  port[$t]=$(free_port); probe_port=$(free_port)
  (cd "$tree" && exec env "${task_env[@]}" taskset -c 1 deno run -P=mirrorhook "$v8_flags" main.ts serve \
    --rules "$root/bench/rules.yaml" --tls-dir "$work/tls" --host 127.0.0.1 --port "${port[$t]}" \
    --probe-port "$probe_port" --shutdown-delay 0 "${mh_args[@]}" >"$out/$t.out" 2>"$out/$t.err") &
  pids+=($!); pid[$t]=$!
  wait_up "http://127.0.0.1:$probe_port/readyz" 300
  mh_port=${mh_port:-${port[$t]}}
done
if [[ $targets == *go-stdlib* ]]; then
  taskset -c 1 "$work/go-stdlib" -addr "127.0.0.1:$go_port" -cert "$work/cert/cert.pem" -key "$work/cert/key.pem" \
    -rules "$shared/rules/rules.json" 2>"$out/go-stdlib.err" &
  pids+=($!); pid[go-stdlib]=$!; port[go-stdlib]=$go_port
  wait_up "https://127.0.0.1:$go_port/"
fi
for t in $targets; do
  # own-floor, tls-floor, ...: bench/servers/floor_sized.ts with TRANSPORT=own, tls, ...
  [[ $t == *-floor ]] || continue
  floor_port=$(free_port)
  # An answer the size of mirrorhook's, asked of the first mirrorhook target.
  [ -n "$mh_port" ] || { echo "tail.sh: a floor needs a mirrorhook target (for its answer size)" >&2; exit 2; }
  answer=${answer:-$(curl -sk -H 'content-type: application/json' --data-binary "@$typical" -o /dev/null \
    -w '%{size_download}' "https://127.0.0.1:$mh_port/mutate")}
  TRANSPORT=${t%-floor} taskset -c 1 deno run --no-prompt --allow-net=127.0.0.1 --allow-read="$work/cert" \
    --allow-env=TRANSPORT bench/servers/floor_sized.ts "$floor_port" "$work/cert" "$answer" "$answer" \
    2>"$out/$t.err" >/dev/null &
  pids+=($!); pid[$t]=$!; port[$t]=$floor_port
  wait_up "https://127.0.0.1:$floor_port/healthz"
done
openloop() { timeout -k 5 120 taskset -c 0 "$work/openloop" -ca "$work/cert/ca.pem" -body "$typical" -conns 16 "$@"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
for t in $targets; do openloop -url "https://127.0.0.1:${port[$t]}/mutate" -count 10000 >/dev/null; done
results=$out/results.jsonl
: >"$results"
for round in $(seq 1 "${ROUNDS:-3}"); do
  for rate in "$@"; do
    for t in $targets; do
      [ "$t" = go-stdlib ] && [ "$rate" -gt "${GO_MAX_RATE:-2000}" ] && continue
      before=$(cpu_ticks "${pid[$t]}")
      line=$(openloop -url "https://127.0.0.1:${port[$t]}/mutate" -rate "$rate" -duration "${SECS:-10}s" \
        -timeline "$out/$t-$rate-$round.tl")
      ticks=$(($(cpu_ticks "${pid[$t]}") - before))
      echo "$line" | jq -c --arg t "$t" --argjson rate "$rate" --argjson round "$round" --argjson ticks "$ticks" \
        --argjson hz "$(getconf CLK_TCK)" \
        '{target:$t, rate:$rate, round:$round, cpu_us_each:(($ticks / $hz * 1e6 / .requests) | round)} + .' |
        tee -a "$results" >&2
    done
  done
done
echo
echo "| target | requests/s | p99 ms (median) | p99 ms (runs) | CPU µs per admission (median) |"
echo "| --- | ---: | ---: | --- | ---: |"
jq -r -s 'group_by([.target, .rate]) | .[] | (map(.p99_ms) | sort) as $p | (map(.cpu_us_each) | sort) as $c |
  "| \(.[0].target) | \(.[0].rate) | \($p[length / 2 | floor]) | \(map(.p99_ms) | join(", ")) | \($c[length / 2 | floor]) |"' \
  "$results"
