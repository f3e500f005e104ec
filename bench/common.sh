# Shared by bench/load.sh, bench/tail.sh and bench/profile.sh (sourced, not run): certificates, Go builds, ports, waits
# and the mirrorhook task's environment and V8 flags, so that every load script starts servers the same way.

# bench_certs DIR: a CA (DIR/cert/ca.pem) and a serving certificate it signs for 127.0.0.1 and localhost (RSA 2048, as
# cert-manager makes by default): DIR/cert/cert.pem and key.pem, and the same pair as DIR/tls/tls.crt and tls.key (the
# layout serve's --tls-dir reads). Clients verify it against the CA like an API server would.
bench_certs() {
  local dir=$1
  mkdir -p "$dir/cert" "$dir/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 -subj "/CN=mirrorhook bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" -keyout "$dir/cert/ca.key" -out "$dir/cert/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" -keyout "$dir/cert/key.pem" \
    -out "$dir/cert/req.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$dir/cert/ext"
  openssl x509 -req -in "$dir/cert/req.csr" -CA "$dir/cert/ca.pem" -CAkey "$dir/cert/ca.key" -CAcreateserial -days 2 \
    -sha256 -extfile "$dir/cert/ext" -out "$dir/cert/cert.pem" 2>/dev/null
  cp "$dir/cert/cert.pem" "$dir/tls/tls.crt"
  cp "$dir/cert/key.pem" "$dir/tls/tls.key"
}

# gobuild SRC OUT: a Go program built offline (standard library only).
gobuild() { (cd "$1" && GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local go build -trimpath -o "$2" .); }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_up URL [TRIES=150]: until URL answers (every 0.1 s), else an error naming it.
wait_up() {
  for _ in $(seq 1 "${2:-150}"); do curl -sk -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$(basename "$0"): $1 did not come up" >&2
  return 1
}

# task_v8_flags [DENO_JSON]: the --v8-flags=... of the mirrorhook task (serve refuses to start without the linear-engine
# ones): one place.
task_v8_flags() { jq -r '.tasks.mirrorhook' "${1:-deno.json}" | grep -o -- '--v8-flags=[^ ]*' || true; }

# task_env_words [DENO_JSON]: the NAME=value words the mirrorhook task sets before deno (MALLOC_ARENA_MAX=1 and the
# malloc thresholds, as the container image sets them); read them with `read -r -a task_env <<<"$(task_env_words)"`.
task_env_words() { jq -r '.tasks.mirrorhook // empty' "${1:-deno.json}" | grep -oE '^([A-Z_]+=[^ ]* )+' || true; }
