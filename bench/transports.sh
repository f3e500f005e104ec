#!/usr/bin/env bash
# Which HTTPS transport mirrorhook should serve on, measured again on this Deno: the sized floor
# (bench/servers/floor_sized.ts, answers the size of mirrorhook's) on each transport, both fixtures.
#   node      node:https (HTTP/1.1) — what mirrorhook uses
#   internal  Deno's internal HTTP/1.1 server on Deno.listenTls offering ALPN http/1.1 only, one-chunk stream answer
#   deno      Deno.serve over TLS (offers h2 by ALPN; keeps Nagle's algorithm on)
# Usage: bench/transports.sh [SECONDS=5] [CONNECTIONS=16]   (deno task bench:transports)
# Prints one JSON line per transport and fixture. Server pinned to CPU 1, wrk to CPU 0; 127.0.0.1 only, bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED_BENCH:-$(pwd)/../shared/bench}
secs=${1:-5}; conns=${2:-16}
[ -d "$shared" ] || { echo "transports.sh: $shared not found (set SHARED_BENCH)" >&2; exit 2; }
work=$(mktemp -d -t mirrorhook-transports.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
bash "$shared/lib/mkcert.sh" "$work" >/dev/null 2>&1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
for transport in node internal deno; do
  TRANSPORT=$transport taskset -c 1 deno run --no-prompt --allow-net=127.0.0.1 --allow-read="$work" --allow-env=TRANSPORT \
    bench/servers/floor_sized.ts "$port" "$work" 2247 16506 2>"$work/$transport.log" &
  pid=$!
  for _ in $(seq 1 100); do curl -sk -o /dev/null "https://127.0.0.1:$port/healthz" && break; sleep 0.1; done
  for pod in pod-admission pod-admission-large; do
    CPUS=0 "$shared/load.sh" "https://127.0.0.1:$port/mutate" "$shared/fixtures/$pod.json" "$secs" "$conns" 2>/dev/null |
      jq -c --arg t "$transport" --arg p "$pod" '{transport:$t, fixture:$p, rps, p50_ms, p99_ms, errors}'
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
