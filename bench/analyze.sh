#!/usr/bin/env bash
# custody analyze against the runbook's IP-frequency pipeline on the same log, in one run.
# Target: at least 10x faster. Usage: bench/analyze.sh  (BENCH_SIZE=4G for a bigger log)
source "$(dirname "$0")/common.sh"
command -v /usr/bin/time >/dev/null || { echo "install GNU time (apt-get install time)" >&2; exit 2; }
time_cmd "awk|sort|uniq -c|sort -rn" bash -c "LC_ALL=C awk '{print \$1}' '$LOG' | LC_ALL=C sort | LC_ALL=C uniq -c | LC_ALL=C sort -rn | head -20"
pipeline_s=$SECONDS_TAKEN
time_cmd "custody analyze" "$CUSTODY" --json analyze "$LOG"
analyze_s=$SECONDS_TAKEN
awk -v a="$analyze_s" -v p="$pipeline_s" 'BEGIN { printf "speed-up over the pipeline: %.1fx (target >= 10)\n", p / a }'
