#!/usr/bin/env bash
# Time to collect a Deployment's logs from the fake API server of the test suite (real HTTP on
# loopback): BENCH_PODS pods (default 20) whose logs add up to BENCH_BYTES (default 1 GiB).
# Usage: bench/k8s.sh
source "$(dirname "$0")/common.sh"
command -v /usr/bin/time >/dev/null || { echo "install GNU time (apt-get install time)" >&2; exit 2; }
pods=${BENCH_PODS:-20}
bytes=${BENCH_BYTES:-1073741824}
cargo build --release --quiet --example fake_apiserver
dir=$(mktemp -d)
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
"$CARGO_TARGET_DIR/release/examples/fake_apiserver" --pods "$pods" --bytes "$bytes" --dir "$dir" > "$dir/out" &
server=$!
for _ in $(seq 600); do [ -s "$dir/out" ] && break; sleep 0.2; done
key=$WORK/bench-key
[ -f "$key.key" ] || "$CUSTODY" keygen --out "$key" > /dev/null
export KUBECONFIG=$(cat "$dir/out")
time_cmd "custody collect (k8s)" "$CUSTODY" --store "$dir/store" --signing-key "$key.key" --json \
    collect --namespace bench --deployment gateway
collect_s=$SECONDS_TAKEN
logs=$(find "$dir/store" -name '*.tar.zst' -exec sh -c 'zstd -dc "$1" | tar -t -v' _ {} \; | awk '/data\/logs\// { s += $3; n++ } END { print s, n }')
awk -v l="$logs" -v s="$collect_s" 'BEGIN { split(l, a, " "); printf "%d logs, %.1f MiB as served, in %.2f s: %.1f MiB/s\n", a[2], a[1] / 1048576, s, a[1] / 1048576 / s }'
time_cmd "custody verify" "$CUSTODY" verify "$dir/store"
