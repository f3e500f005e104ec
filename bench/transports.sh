#!/usr/bin/env bash
# Which HTTPS transport mirrorhook should serve on, measured again on this Deno: the sized floor
# (bench/servers/floor_sized.ts, answers the size of mirrorhook's) on each transport tried, both fixtures, one run.
#   own       mirrorhook's transport: ReloadingTlsServer, node:tls + lib/server/http1.ts framing (what serve uses)
#   tls       node:tls + lib/server/http1.ts in a bare loop (no limits): what "own" costs over it
#   node      node:https (HTTP/1.1) — mirrorhook's transport before issue 13
#   internal  Deno's internal HTTP/1.1 server on Deno.listenTls offering ALPN http/1.1 only, one-chunk stream answer
#   raw       raw Deno.listenTls + lib/server/http1.ts: fast on small answers, stalls on large ones (no setNoDelay)
#   deno      Deno.serve over TLS (offers h2 by ALPN; keeps Nagle's algorithm on)
# Usage: bench/transports.sh [SECONDS=5] [CONNECTIONS=16]   (deno task bench:transports)
#   ROUNDS=3 interleaves three rounds (each transport once per round) and reports the medians.
#   TRANSPORTS="own node" measures only those.
# Prints one JSON line per measurement, then a table: median and best rps of the rounds, each relative to node:https
# (on a shared machine the best of the interleaved rounds is the steadier figure), median p50/p99.
# Server pinned to CPU 1, wrk to CPU 0; 127.0.0.1 only, bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED_BENCH:-$(pwd)/../shared/bench}
secs=${1:-5}; conns=${2:-16}; rounds=${ROUNDS:-1}
transports=${TRANSPORTS:-own tls node internal raw deno}
[ -d "$shared" ] || { echo "transports.sh: $shared not found (set SHARED_BENCH)" >&2; exit 2; }
work=$(mktemp -d -t mirrorhook-transports.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
bash "$shared/lib/mkcert.sh" "$work" >/dev/null 2>&1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
for round in $(seq 1 "$rounds"); do
  for transport in $transports; do
    TRANSPORT=$transport taskset -c 1 deno run --no-prompt --allow-net=127.0.0.1 --allow-read="$work" \
      --allow-env=TRANSPORT bench/servers/floor_sized.ts "$port" "$work" 2247 16506 2>"$work/$transport.log" &
    pid=$!
    for _ in $(seq 1 100); do curl -sk -o /dev/null "https://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    for pod in pod-admission pod-admission-large; do
      CPUS=0 "$shared/load.sh" "https://127.0.0.1:$port/mutate" "$shared/fixtures/$pod.json" "$secs" "$conns" 2>/dev/null |
        jq -c --arg t "$transport" --arg p "$pod" --argjson r "$round" \
          '{transport:$t, fixture:$p, round:$r, rps, p50_ms, p99_ms, errors}' | tee -a "$work/results.jsonl"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  done
done
echo
jq -rs '
  def median: sort | .[(length - 1) / 2 | floor];
  group_by(.transport + " " + .fixture)
  | map({transport: .[0].transport, fixture: .[0].fixture, rps: (map(.rps) | median), best: (map(.rps) | max),
         p50: (map(.p50_ms) | median), p99: (map(.p99_ms) | median), errors: (map(.errors) | add)}) as $rows
  | ($rows | map(select(.transport == "node")) | map({(.fixture): .rps}) | add // {}) as $node
  | ($rows | map(select(.transport == "node")) | map({(.fixture): .best}) | add // {}) as $nodebest
  | ["transport", "fixture", "median rps", "x node", "best rps", "x node", "p50 ms", "p99 ms", "errors"],
    ($rows[] | [.transport, .fixture,
      (.rps | round), (if $node[.fixture] then (.rps / $node[.fixture] * 100 | round / 100) else "-" end),
      (.best | round), (if $nodebest[.fixture] then (.best / $nodebest[.fixture] * 100 | round / 100) else "-" end),
      .p50, .p99, .errors])
  | @tsv' "$work/results.jsonl" | column -t -s $'\t'
