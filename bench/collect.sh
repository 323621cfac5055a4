#!/usr/bin/env bash
# collect (analysis + seal + hashing) against `zstd -3 -T2` alone on the same log, in one run.
# Target: collect within 1.3x of zstd. Usage: bench/collect.sh  (BENCH_SIZE=4G for a bigger log)
source "$(dirname "$0")/common.sh"
command -v /usr/bin/time >/dev/null || { echo "install GNU time (apt-get install time)" >&2; exit 2; }
store=$WORK/store
rm -rf "$store"
key=$WORK/bench-key
[ -f "$key.key" ] || "$CUSTODY" keygen --out "$key" > /dev/null
time_cmd "zstd -3 -T2" zstd -3 -T2 -q -c "$LOG"
zstd_s=$SECONDS_TAKEN
time_cmd "custody collect" "$CUSTODY" --store "$store" --signing-key "$key.key" --json collect --logs "$LOG"
collect_s=$SECONDS_TAKEN
awk -v c="$collect_s" -v z="$zstd_s" 'BEGIN { printf "ratio collect / zstd: %.2f (target <= 1.3)\n", c / z }'
time_cmd "custody verify" "$CUSTODY" verify "$store"
rm -rf "$store"
