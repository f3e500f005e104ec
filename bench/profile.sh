#!/usr/bin/env bash
# The top of V8's CPU profile of mirrorhook serving the typical Pod (issue 13: "a CPU profile (--v8-flags=--prof,
# node --prof-process) for the whole").
# Usage: bench/profile.sh [REF]     (deno task bench:profile [REF])
#   REF  a git commit: profile that tree (checked out in a temporary worktree) instead of this working tree.
# The server runs as its tree's deno.json `mirrorhook` task runs it (that task's environment, permissions and V8
# flags, plus --prof), with this tree's bench/rules.yaml (so both sides of a comparison decide the same rules), pinned
# to CPU 1; bench/openloop sends WARMUP then COUNT admissions of ../shared/bench/fixtures/pod-admission.json (closed
# loop, CONNS connections, CPU 0; with RATE=R the COUNT go in an open loop instead, R per second for COUNT/R seconds,
# so that each request comes alone as at a moderate real rate, not batched as in the closed loop); SIGTERM stops the
# server and its exit writes out V8's log; node --prof-process reads the ticks of the measured COUNT only (--range:
# start-up, warm-up and idle time are left out) and this prints the summary, the top TOP entries of the JavaScript,
# C++ and shared-library tables and of the bottom-up (heavy) profile.
# Environment: COUNT=40000 WARMUP=5000 CONNS=16 RATE= (empty: closed loop) TOP=15 DEPTH=2 (levels of callers shown
# under a bottom-up entry) SHARED_BENCH=../shared/bench PROFILE_OUT=DIR (keep the V8 log and the whole processed
# profile there).
# Node's tick processor (v20: V8 11.3's) does not know V8 15's context-specialized code markers (`+'` Maglev, `*'`
# Turbofan) and drops those code objects, so their ticks go unaccounted: the log is read with the quote removed.
# The deno binary has no symbol table: its own (Rust, and V8's C++) ticks count under the shared library deno.
# Only 127.0.0.1 is used; the load is bounded in count and time. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source bench/common.sh
shared=${SHARED_BENCH:-$root/../shared/bench}
ref=${1:-}
count=${COUNT:-40000}; warmup=${WARMUP:-5000}; conns=${CONNS:-16}; top=${TOP:-15}; rate=${RATE:-}
[[ -z $rate || $rate =~ ^[1-9][0-9]*$ ]] || { echo "profile.sh: RATE must be whole requests/s" >&2; exit 2; }
[ -d "$shared" ] || { echo "profile.sh: $shared not found (set SHARED_BENCH)" >&2; exit 2; }
for tool in jq openssl taskset go curl python3 node git; do
  command -v "$tool" >/dev/null || { echo "profile.sh: needs $tool" >&2; exit 2; }
done
say() { echo "profile.sh: $*" >&2; }

work=$(mktemp -d -t mirrorhook-profile.XXXXXX)
pid=
tree=$root
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "$tree" != "$root" ]; then git -C "$root" worktree remove --force "$tree" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "$ref" ]; then
  commit=$(git rev-parse --verify -q "$ref^{commit}") || { say "$ref is not a commit"; exit 2; }
  tree=$work/tree
  git worktree add --detach "$tree" "$commit" >/dev/null 2>&1 || { say "cannot check out $ref in $tree"; exit 2; }
  label="$(git log -1 --format='%h %s' "$commit" | cut -c1-100)"
else
  label="working tree of $(git log -1 --format=%h HEAD)"
  git diff --quiet HEAD -- lib main.ts deno.json || label="$label (modified)"
fi

mkdir -p "$work/v8"
bench_certs "$work"
gobuild "$root/bench/openloop" "$work/openloop"

# The tree's own way of running mirrorhook: `ENV=... deno run FLAGS main.ts` in its deno.json task.
task=$(jq -r '.tasks.mirrorhook // empty' "$tree/deno.json")
[ -n "$task" ] || { say "$tree/deno.json has no mirrorhook task"; exit 2; }
read -r -a task_env <<<"$(task_env_words "$tree/deno.json")"
read -r -a run_flags <<<"$(echo "$task" | sed -E 's/^([A-Z_]+=[^ ]* )*deno run //; s/ main\.ts.*$//')"
prof="--prof,--logfile=$work/v8/v8.log"
have_v8=0
for i in "${!run_flags[@]}"; do
  case ${run_flags[$i]} in --v8-flags=*) run_flags[i]="${run_flags[$i]},$prof"; have_v8=1 ;; esac
done
[ "$have_v8" = 1 ] || run_flags+=("--v8-flags=$prof")

port=$(free_port); probe=$(free_port)
now_us() { echo $(($(date +%s%N) / 1000)); }
say "profiling $label: ${task_env[*]} deno run ${run_flags[*]} main.ts serve (CPU 1); $warmup + $count admissions"
t0=$(now_us)
(cd "$tree" && exec env "${task_env[@]}" taskset -c 1 deno run "${run_flags[@]}" main.ts serve \
  --rules "$root/bench/rules.yaml" --tls-dir "$work/tls" --host 127.0.0.1 --port "$port" --probe-port "$probe" \
  --shutdown-delay 0 2>"$work/server.log") &
pid=$!
wait_up "http://127.0.0.1:$probe/readyz" 300 || { tail -5 "$work/server.log" >&2; exit 1; }

typical=$shared/fixtures/pod-admission.json
load() { # COUNT [RATE]: closed loop, or an open loop of COUNT/RATE seconds at RATE
  local how=(-count "$1")
  [ -n "${2:-}" ] && how=(-rate "$2" -duration "$(($1 * 1000 / $2))ms")
  timeout -k 5 300 taskset -c 0 "$work/openloop" -url "https://127.0.0.1:$port/mutate" -body "$typical" \
    -ca "$work/cert/ca.pem" "${how[@]}" -conns "$conns"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # user + system of every thread, in 1/100 s
warm=$(load "$warmup")
t1=$(now_us); c1=$(cpu_ticks)
measured=$(load "$count" "$rate")
t2=$(now_us); c2=$(cpu_ticks)
say "warm-up: $warm"
say "measured: $measured"
bad=$(echo "$warm $measured" | jq -s 'map(.errors + .non2xx) | add')
[ "$bad" = 0 ] || { say "$bad requests failed"; exit 1; }

# A clean stop: serve returns after SIGTERM and the process's exit flushes V8's log.
kill -TERM "$pid"
for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then say "server did not stop within 20 s of SIGTERM"; exit 1; fi
status=0; wait "$pid" || status=$?
pid=
[ "$status" = 0 ] || { say "server exited with status $status"; tail -5 "$work/server.log" >&2; exit 1; }

# One log per isolate; the main thread's has the most ticks (a pattern screening worker, if any, has its own).
log=
best=-1
for f in "$work"/v8/*v8.log; do
  n=$(grep -c '^tick,' "$f" || true)
  [ "$n" -gt "$best" ] && { best=$n; log=$f; }
done
[ -n "$log" ] || { say "no V8 log was written"; exit 1; }
sed -E "/^code-creation,/ s/,([+*])'\$/,\\1/" "$log" >"$work/v8.log"
# Tick times count from the isolate's log opening, just after t0; --range takes milliseconds. The window t1..t2 after
# t0 starts at most the start-up's few milliseconds late, so it holds only the measured admissions.
range="$(((t1 - t0 + 999) / 1000)),$(((t2 - t0) / 1000))"
(cd "$work" && node --prof-process --range="$range" v8.log 2>"$work/process.err" |
  sed -e '/^Testing v8 version different/d' -e "s#file://$tree/##g" \
    -e 's#file://[^ ]*/npm/registry\.npmjs\.org/#npm:#g' >"$work/profile.txt") ||
  { say "node --prof-process failed"; tail -5 "$work/process.err" >&2; exit 1; }
grep -q '^Statistical profiling result from [^,]*, ([1-9]' "$work/profile.txt" ||
  { say "no ticks in the measured window ($range ms)"; exit 1; }
if [ -n "${PROFILE_OUT:-}" ]; then
  mkdir -p "$PROFILE_OUT"
  cp "$work/v8.log" "$work/profile.txt" "$work/server.log" "$PROFILE_OUT/"
  say "kept the log and the whole profile in $PROFILE_OUT"
fi

# The sections of the processed profile, each trimmed to TOP entries.
section() { # TITLE ENTRIES: the title line, its header lines, then ENTRIES lines up to the next blank line
  awk -v title=" [$1]:" -v n="$2" '
    $0 == title { on = 1; print; next }
    on && /^ *ticks/ { print; next }
    on && /^  (Note|amount|Callers)/ { next }
    on && /^ *$/ { if (shown) exit; next }
    on { if (shown < n) print; shown++ }' "$work/profile.txt"
}
heavy() { # LINES DEPTH: the bottom-up profile's first LINES lines down to DEPTH callers (an entry, its callers, ...)
  awk -v n="$1" -v depth="$2" '
    / \[Bottom up \(heavy\) profile\]:/ { on = 1; print; next }
    on && /^ *ticks parent/ { print; body = 1; next }
    body && shown < n && match($0, /%  +/) && (RLENGTH - 3) / 2 <= depth { print; shown++ }' "$work/profile.txt"
}
echo "# $label"
echo "$measured" | jq -r --argjson cpu "$((c2 - c1))" --arg conns "$conns" --arg warmup "$warmup" --arg rate "$rate" \
  '"# \(.requests) admissions of the typical Pod at \(.rps | round) req/s (" +
   (if $rate == "" then "closed loop" else "open loop, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms" end) +
   ", \($conns) connections, after \($warmup) more); server CPU \($cpu * 10000 / .requests | round) us each"'
grep -m1 "^Statistical profiling result" "$work/profile.txt" |
  sed 's/^Statistical profiling result from [^,]*, /ticks: /'
echo
section Summary 10
echo
section "Shared libraries" "$top"
echo
section JavaScript "$top"
echo
section C++ "$top"
echo
heavy "$top" "${DEPTH:-2}"
