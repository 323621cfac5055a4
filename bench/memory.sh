#!/usr/bin/env bash
# The analysis's memory budget: `collect` on a log where every line comes from a new IPv6 client
# (4 million by default, about 400 MB), with the shipped policies (512 MiB budget) and with a
# budget large enough for every client. Prints peak RSS, whether the budget was reached, and what
# the summary says it did not count; the sealed bytes must equal the log's either way.
# Usage: bench/memory.sh   (BENCH_CLIENTS=… for another count)
source "$(dirname "$0")/common.sh"
CLIENTS=${BENCH_CLIENTS:-4000000}
V6=$WORK/v6-$CLIENTS.log
if [ ! -s "$V6" ]; then
    echo "generating $V6 ($CLIENTS distinct IPv6 clients, one line each)" >&2
    python3 - "$CLIENTS" > "$V6.tmp" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    status = 401 if i % 3 == 0 else 200
    out.write('2001:db8:%x:%x::%x - - [26/Nov/2026:14:%02d:%02d +0000] "POST /api/v1/auth/login HTTP/1.1" %d 17 "-" "okhttp/4.12.0"\n'
              % (i >> 32, (i >> 16) & 0xFFFF, i & 0xFFFF, (i // 60000) % 60, (i // 1000) % 60, status))
PY
    mv "$V6.tmp" "$V6"
fi
cat "$V6" > /dev/null
key=$WORK/bench-key
[ -f "$key.key" ] || "$CUSTODY" keygen --out "$key" > /dev/null
big=$WORK/policies-unlimited
mkdir -p "$big"
cp policies/*.yaml "$big/"
sed -i 's/^  memory_budget_bytes: .*/  memory_budget_bytes: 68719476736/' "$big/collection.yaml"
for run in shipped unlimited; do
    store=$WORK/memory-store-$run
    rm -rf "$store"
    policies=policies
    [ "$run" = unlimited ] && policies=$big
    t=$( { /usr/bin/time -f '%e %M' "$CUSTODY" --store "$store" --policies "$policies" --json \
        --signing-key "$key.key" collect --logs "$V6" > "$WORK/memory-$run.json"; } 2>&1 | tail -n 1) || true
    python3 - "$WORK/memory-$run.json" "$run" "$t" "$V6" <<'PY'
import hashlib, json, sys
result = json.load(open(sys.argv[1]))
run, (secs, kib), log = sys.argv[2], sys.argv[3].split(), sys.argv[4]
h = hashlib.sha256()
with open(log, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
        h.update(block)
s = result['summary']
limit = s.get('limit')
print(f"{run:10} {float(secs):7.2f} s  {int(kib) // 1024:6d} MiB peak RSS  "
      f"clients counted {s['unique_ips']:,}  sealed whole: {result['sources'][0]['sha256'] == h.hexdigest()}")
if limit:
    print(f"           budget {limit['memory_budget_bytes'] >> 20} MiB reached at line {limit['reached_at_line']:,}: "
          f"{limit['requests_not_attributed']:,} requests and {limit['auth_failures_not_attributed']:,} failures not counted per client")
PY
done
