#!/usr/bin/env python3
"""A burst of idle keep-alive connections against a tollgate viewer listener.

Opens N connections, sends one GET on each and reads the whole answer (so
every connection is an idle HTTP/1.1 keep-alive connection, the state a real
player leaves between segment fetches), holds them for HOLD seconds, then
closes them all. With --pid it prints the RSS of that process (tollgate)
before the burst, while it is held, and SETTLE seconds after the close, and
the per-connection figures. Standard library only.

Usage: scripts/idle-burst.py --url http://127.0.0.1:18080/live/ch1/index.m3u8 \
         [-n 5000] [--hold 10] [--settle 10] [--pid PID] [--json]
"""

import argparse
import asyncio
import json
import resource
import sys
import time
from urllib.parse import urlsplit


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def read_answer(reader):
    """Read one HTTP/1.1 response (Content-Length or chunked); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def open_one(host, port, request, sem):
    async with sem:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        await writer.drain()
        status = await read_answer(reader)
        return reader, writer, status


async def burst(args):
    u = urlsplit(args.url)
    host, port = u.hostname, u.port or 80
    path = u.path + (f"?{u.query}" if u.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode()
    out = {"connections": args.n}
    if args.pid:
        out["rss_before_kib"] = rss_kib(args.pid)
    sem = asyncio.Semaphore(200)
    t0 = time.monotonic()
    results = await asyncio.gather(
        *(open_one(host, port, request, sem) for _ in range(args.n)),
        return_exceptions=True,
    )
    conns = [r for r in results if not isinstance(r, BaseException)]
    out["opened"] = len(conns)
    out["failed"] = args.n - len(conns)
    out["statuses"] = sorted({r[2] for r in conns})
    out["open_seconds"] = round(time.monotonic() - t0, 2)
    await asyncio.sleep(args.hold)
    if args.pid:
        out["rss_held_kib"] = rss_kib(args.pid)
    # Still open at the end of the hold (the edge may close idle ones).
    out["still_open"] = sum(1 for r, _, _ in conns if not r.at_eof())
    for _, w, _ in conns:
        w.close()
    await asyncio.sleep(args.settle)
    if args.pid:
        out["rss_after_kib"] = rss_kib(args.pid)
        if conns:
            held = out["rss_held_kib"] - out["rss_before_kib"]
            out["per_conn_held_bytes"] = held * 1024 // len(conns)
            kept = out["rss_after_kib"] - out["rss_before_kib"]
            out["per_conn_kept_bytes"] = kept * 1024 // len(conns)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("-n", type=int, default=5000)
    p.add_argument("--hold", type=float, default=10.0)
    p.add_argument("--settle", type=float, default=10.0)
    p.add_argument("--pid", type=int)
    p.add_argument("--json", action="store_true", help="one JSON line instead of text")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out = asyncio.run(burst(args))
    if args.json:
        print(json.dumps(out), flush=True)
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    sys.exit(0 if out["failed"] == 0 else 1)


if __name__ == "__main__":
    main()
