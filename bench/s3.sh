#!/usr/bin/env bash
# Upload throughput to S3 (moto_server on loopback): a collection of the benchmark log is sealed
# into the local spool with S3 out of reach, then `custody store flush` uploads it and is timed
# alone; then `custody verify` reads it back from S3. Needs moto_server (scripts/test.sh installs
# it into .venv). Usage: bench/s3.sh  (BENCH_SIZE=4G for a bigger log)
source "$(dirname "$0")/common.sh"
command -v /usr/bin/time >/dev/null || { echo "install GNU time (apt-get install time)" >&2; exit 2; }
venv=$PWD/.venv
[ -x "$venv/bin/moto_server" ] || { echo "run scripts/test.sh once to install moto_server into .venv" >&2; exit 2; }
port=$("$venv/bin/python3" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$WORK/moto.log" 2>&1 &
moto=$!
spool=$(mktemp -d)
trap 'kill $moto 2>/dev/null; rm -rf "$spool"' EXIT
for _ in $(seq 150); do
    "$venv/bin/python3" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
    sleep 0.2
done
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export CUSTODY_SPOOL=$spool
endpoint=http://127.0.0.1:$port
"$venv/bin/python3" -c "
import boto3
boto3.client('s3', endpoint_url='$endpoint').create_bucket(Bucket='custody-bench', ObjectLockEnabledForBucket=True)"
key=$WORK/bench-key
[ -f "$key.key" ] || "$CUSTODY" keygen --out "$key" > /dev/null
store=s3://custody-bench/bench
# S3 out of reach (a closed port): the case is sealed into the spool, and collect exits with 2.
"$CUSTODY" --store "$store" --s3-endpoint http://127.0.0.1:9 --s3-path-style --signing-key "$key.key" \
    --json collect --logs "$LOG" > "$WORK/collect.json" || true
archive=$(find "$spool" -name '*.tar.zst' -printf '%s\n' | head -1)
time_cmd "custody store flush" "$CUSTODY" --s3-endpoint "$endpoint" --s3-path-style store flush "$store"
flush_s=$SECONDS_TAKEN
awk -v b="$archive" -v s="$flush_s" 'BEGIN { printf "uploaded %.1f MiB (the archive and its case) in %.2f s: %.1f MiB/s\n", b / 1048576, s, b / 1048576 / s }'
time_cmd "custody verify (from S3)" "$CUSTODY" --s3-endpoint "$endpoint" --s3-path-style verify "$store"
