# Shared by the benchmark scripts: build custody, make the deterministic log, time commands.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/custody-target}"
WORK=${BENCH_DIR:-/var/tmp/custody-bench}
SIZE=${BENCH_SIZE:-1G}
IPS=${BENCH_IPS:-300000}
mkdir -p "$WORK"
cargo build --release --quiet
CUSTODY=$CARGO_TARGET_DIR/release/custody
LOG=$WORK/gateway-$SIZE-$IPS.log
if [ ! -s "$LOG" ]; then
    echo "generating $LOG ($SIZE, $IPS distinct clients)" >&2
    python3 bench/genlog.py --bytes "$SIZE" --ips "$IPS" > "$LOG.tmp"
    mv "$LOG.tmp" "$LOG"
fi
# Read the log once so every timed command starts from a warm page cache.
cat "$LOG" > /dev/null

# time_cmd LABEL CMD...: runs CMD, prints "LABEL seconds peak-RSS-KiB", sets SECONDS_TAKEN.
time_cmd() {
    local label=$1; shift
    local t
    t=$( { /usr/bin/time -f '%e %M' "$@" > /dev/null; } 2>&1 | tail -n 1)
    SECONDS_TAKEN=${t%% *}
    printf '%-28s %8.2f s  %8d KiB peak RSS\n' "$label" "${t%% *}" "${t##* }"
}
