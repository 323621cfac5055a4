#!/usr/bin/env bash
# The daemon under unauthenticated uploads: 150 clients at once each send a 4 MiB body without a
# token; prints the daemon's peak and current RSS (VmHWM, VmRSS) before, during and after, and
# how long a declared `Content-Length: 300000000` with no body waits for its answer.
# Usage: bench/hostile.sh (CUSTODY_BIN=path to measure another build; BENCH_CLIENTS, BENCH_MIB).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/custody-target}"
clients=${BENCH_CLIENTS:-150}
mib=${BENCH_MIB:-4}
if [ -z "${CUSTODY_BIN:-}" ]; then
    cargo build --release --quiet --bin custody
    CUSTODY_BIN=$CARGO_TARGET_DIR/release/custody
fi
dir=$(mktemp -d)
trap 'kill $daemon 2>/dev/null; rm -rf "$dir"' EXIT
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/webhook.token"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/analyst.token"
"$CUSTODY_BIN" keygen --out "$dir/collector" > /dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/custody.yaml" <<YAML
listen: 127.0.0.1:$port
store: $dir/store
signing_key: collector.key
auth:
  webhook_token_file: webhook.token
  analyst_token_file: analyst.token
YAML
CUSTODY_LOG=warn "$CUSTODY_BIN" serve --config "$dir/custody.yaml" 2> "$dir/daemon.log" &
daemon=$!
for _ in $(seq 100); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/readyz')" 2>/dev/null && break; sleep 0.1; done
python3 - "$port" "$daemon" "$clients" "$mib" "$(cat "$dir/webhook.token")" <<'PY'
import socket, sys, threading, time
port, pid, clients, mib, token = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def rss():
    f = dict(l.split(':', 1) for l in open(f'/proc/{pid}/status'))
    return f"VmHWM {int(f['VmHWM'].split()[0]) // 1024} MB, VmRSS {int(f['VmRSS'].split()[0]) // 1024} MB"
print('before:', rss())
body = b' ' * (mib << 20)
codes = []
go = threading.Barrier(clients)
def upload():
    s = socket.create_connection(('127.0.0.1', port))
    s.settimeout(60)
    go.wait()
    try:
        s.sendall(b'POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                  b'Content-Length: %d\r\n\r\n' % len(body))
        s.sendall(body)
    except OSError:
        pass  # answered and closed before the body was all sent
    try:
        codes.append(s.recv(64).split(b' ')[1].decode())
    except (OSError, IndexError):
        codes.append('closed')
    s.close()
threads = [threading.Thread(target=upload) for _ in range(clients)]
started = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
print(f'{clients} unauthenticated {mib} MiB uploads in {time.monotonic() - started:.2f} s, answers:',
      {c: codes.count(c) for c in set(codes)})
print('during:', rss())
time.sleep(2)
print('after they closed:', rss())
s = socket.create_connection(('127.0.0.1', port))
s.settimeout(10)
started = time.monotonic()
s.sendall(b'POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ' + token.encode() +
          b'\r\nContent-Length: 300000000\r\n\r\n')
try:
    answer = s.recv(64).split(b' ')[1].decode()
except (OSError, IndexError):
    answer = 'none'
print(f'declared Content-Length 300000000, no body: answer {answer} after {time.monotonic() - started:.2f} s')
PY
