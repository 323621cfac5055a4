#!/usr/bin/env bash
# The daemon under a burst of Alertmanager notifications on loopback (mostly resends of a few
# alerts): latency of the answers (p50/p99), and zero lost and zero duplicate cases.
# Goal: p99 under 50 ms at 500 requests/s on 2 cores. Usage: bench/webhook.sh
# (BENCH_RATE, BENCH_SECONDS, BENCH_ALERTS to change the load.)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/custody-target}"
rate=${BENCH_RATE:-500}
seconds=${BENCH_SECONDS:-10}
alerts=${BENCH_ALERTS:-20}
cargo build --release --quiet --bin custody --example webhook_load
bin=$CARGO_TARGET_DIR/release
dir=$(mktemp -d)
trap 'kill $daemon 2>/dev/null; rm -rf "$dir"' EXIT
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/webhook.token"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/analyst.token"
"$bin/custody" keygen --out "$dir/collector" > /dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/custody.yaml" <<YAML
listen: 127.0.0.1:$port
store: $dir/store
signing_key: collector.key
auth:
  webhook_token_file: webhook.token
  analyst_token_file: analyst.token
kubernetes:
  kubeconfig: $dir/no-cluster.yaml
limits:
  queue: 1000
YAML
# No cluster: each case's collection fails fast and is journaled as failed; the webhook path is
# what is measured.
printf 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n' > "$dir/no-cluster.yaml"
CUSTODY_LOG=warn "$bin/custody" serve --config "$dir/custody.yaml" 2> "$dir/daemon.log" &
daemon=$!
for _ in $(seq 100); do python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/readyz')" 2>/dev/null && break; sleep 0.1; done
"$bin/examples/webhook_load" --port "$port" --token-file "$dir/webhook.token" --rate "$rate" --seconds "$seconds" --alerts "$alerts"
cases=$(find "$dir/store/cases" -mindepth 1 -maxdepth 1 -type d | wc -l)
episodes=$(find "$dir/store/episodes" -name '*.json' ! -name '*.resolved.json' | wc -l)
echo "distinct alerts $alerts, episodes recorded $episodes, cases opened $cases (want $alerts and $alerts)"
