#!/usr/bin/env python3
"""Deterministic API-gateway access-log generator (NCSA combined format).

The same arguments always give the same bytes, so benchmark runs and examples are repeatable.
Traffic: a long tail of ordinary clients (a few very busy ones), plus a handful of attackers
sending credential-stuffing bursts that draw 401, 403, 419 and 429 responses.

    bench/genlog.py --bytes 1G --ips 300000 > /tmp/gateway-1g.log
    bench/genlog.py --lines 5000 --ips 300 --attackers 3 > examples/api-gateway-incident.log
"""

import argparse
import random
import sys
import time

PATHS = [
    "/api/v1/accounts", "/api/v1/payments", "/api/v1/transfers", "/api/v1/wallets/balance",
    "/api/v1/users/me", "/api/v1/cards", "/health", "/api/v1/notifications", "/static/app.js",
]
LOGIN_PATHS = ["/api/v1/auth/login", "/api/v1/auth/token", "/api/v1/auth/refresh"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "okhttp/4.12.0",
    "Waqiti-Android/5.2.1",
]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def client_ip(i):
    if i % 7 == 0:
        return "2001:db8:%x::1:%x" % ((i >> 16) + 1, i & 0xFFFF)
    return "%d.%d.%d.%d" % (10 + (i >> 24) % 200, (i >> 16) & 255, (i >> 8) & 255, i & 255)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, help="number of lines")
    p.add_argument("--bytes", help="approximate size (e.g. 1G) instead of --lines")
    p.add_argument("--ips", type=int, default=300_000, help="distinct ordinary clients")
    p.add_argument("--attackers", type=int, default=12, help="attacking clients")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=int, default=1795704888, help="first timestamp (Unix seconds)")
    args = p.parse_args()
    if args.lines is None and args.bytes is None:
        p.error("give --lines or --bytes")
    limit_lines = args.lines if args.lines is not None else float("inf")
    limit_bytes = parse_size(args.bytes) if args.bytes else float("inf")

    rng = random.Random(args.seed)
    attackers = ["203.0.113.%d" % (10 + i) for i in range(args.attackers)]
    out = sys.stdout
    written = 0
    n = 0
    t = args.start
    stamp_cache = {}
    buf = []
    while n < limit_lines and written < limit_bytes:
        if n % 40 == 0:
            t += 1
        stamp = stamp_cache.get(t)
        if stamp is None:
            g = time.gmtime(t)
            stamp = "%02d/%s/%04d:%02d:%02d:%02d +0000" % (
                g.tm_mday, MONTHS[g.tm_mon - 1], g.tm_year, g.tm_hour, g.tm_min, g.tm_sec)
            stamp_cache = {t: stamp}
        r = rng.random()
        if attackers and r < 0.03:
            ip = attackers[rng.randrange(len(attackers))]
            path = LOGIN_PATHS[rng.randrange(len(LOGIN_PATHS))]
            status = (401, 401, 401, 403, 419, 429, 429, 200)[rng.randrange(8)]
            method, size, agent = "POST", 48, "python-requests/2.31.0"
        else:
            # A few clients are very busy; most are seen a handful of times.
            i = int(args.ips * (rng.random() ** 3)) if r < 0.5 else rng.randrange(args.ips)
            ip = client_ip(i)
            path = PATHS[rng.randrange(len(PATHS))]
            s = rng.random()
            status = 200 if s < 0.86 else 304 if s < 0.92 else 404 if s < 0.97 else 401 if s < 0.985 else 500
            method = "GET" if rng.random() < 0.8 else "POST"
            size = rng.randrange(200, 40000) if status == 200 else 0
            agent = AGENTS[rng.randrange(len(AGENTS))]
        line = '%s - - [%s] "%s %s HTTP/1.1" %d %d "-" "%s"\n' % (ip, stamp, method, path, status, size, agent)
        buf.append(line)
        written += len(line)
        n += 1
        if len(buf) >= 10000:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))


if __name__ == "__main__":
    main()
