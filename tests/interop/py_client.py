#!/usr/bin/env python3
"""Interop client: Python `websockets` against an ECHO server under test.

    venv/bin/python py_client.py ws://127.0.0.1:PORT [--timeout 30]
        [--total-timeout 120] [--no-compression]

Prints "ok <name>" or "FAIL <name>: why" per check, then a summary line, and
exits 1 if any check failed. Every network wait is bounded by --timeout and
the whole run by --total-timeout.
"""

import argparse
import asyncio
import os
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

MiB = 1024 * 1024
BIG = 16 * MiB

results = []


def report(name, ok, why=""):
    results.append(ok)
    print(("ok %s" % name) if ok else ("FAIL %s: %s" % (name, why)), flush=True)


async def check(name, coro, timeout):
    """Run one check; any exception or time-out is a failure of that check."""
    try:
        why = await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        why = "timed out after %ss" % timeout
    except ConnectionClosed as e:
        why = "connection closed: %s" % e
    except Exception as e:  # noqa: BLE001 - report anything as a failure
        why = "%s: %s" % (type(e).__name__, e)
    report(name, why is None, why)
    return why is None


def expect(actual, expected, what="message"):
    """None if equal, else a short description (big payloads not printed)."""
    if type(actual) is type(expected) and actual == expected:
        return None
    def show(v):
        return repr(v) if len(v) <= 64 else "%s of %d bytes/chars" % (type(v).__name__, len(v))
    return "%s: expected %s, got %s" % (what, show(expected), show(actual))


async def fragments(parts):
    """An async iterator makes websockets send one frame per item."""
    for p in parts:
        yield p
        await asyncio.sleep(0)  # let each fragment go out on its own


async def echo_checks(ws, timeout):
    async def text():
        msg = "hello edgews \u00e9\u2713\U0001F600"
        await ws.send(msg)
        return expect(await ws.recv(), msg)

    async def empty_text():
        await ws.send("")
        return expect(await ws.recv(), "")

    async def binary():
        msg = os.urandom(1000) + b"\x00\xff"
        await ws.send(msg)
        return expect(await ws.recv(), msg)

    async def fragmented_text():
        # Three continuation frames; one contains a 2-byte UTF-8 character.
        parts = ["frag", "mented \u00e9", " text"]
        await ws.send(fragments(parts))
        return expect(await ws.recv(), "".join(parts))

    async def fragmented_binary():
        parts = [b"\x01" * 10, b"", b"\x02" * 70000, b"\x03"]
        await ws.send(parts)  # a plain list is sent fragmented too
        return expect(await ws.recv(), b"".join(parts))

    async def big_binary():
        msg = os.urandom(BIG)
        t0 = time.monotonic()
        await ws.send(msg)
        why = expect(await ws.recv(), msg, "16 MiB echo")
        if why is None:
            print("  16 MiB round trip in %.2fs" % (time.monotonic() - t0), flush=True)
        return why

    async def ping():
        # The waiter resolves when a pong with the same payload comes back.
        waiter = await ws.ping(b"edgews-ping")
        latency = await waiter
        print("  ping latency %.2f ms" % (latency * 1000), flush=True)
        return None

    async def order():
        msgs = ["m%d" % i for i in range(100)]
        for m in msgs:
            await ws.send(m)
        got = [await ws.recv() for _ in msgs]
        return None if got == msgs else "messages out of order or lost"

    await check("text", text(), timeout)
    await check("empty-text", empty_text(), timeout)
    await check("binary", binary(), timeout)
    await check("fragmented-text", fragmented_text(), timeout)
    await check("fragmented-binary", fragmented_binary(), timeout)
    await check("binary-16MiB", big_binary(), timeout)
    await check("ping", ping(), timeout)
    await check("in-order-100", order(), timeout)


async def close_check(ws, code, reason, need_reason):
    """Close with (code, reason); the server must answer with the same code
    (RFC 6455 5.5.1) and, where need_reason, the same reason."""
    await ws.close(code, reason)
    if ws.close_code != code:
        return "server answered close code %s, reason %r" % (ws.close_code, ws.close_reason)
    if need_reason and ws.close_reason != reason:
        return "server answered reason %r, expected %r" % (ws.close_reason, reason)
    print("  close %d answered with %d %r" % (code, ws.close_code, ws.close_reason), flush=True)
    # After a clean close, recv must raise ConnectionClosedOK, not hang.
    try:
        await ws.recv()
        return "recv() after close returned a message"
    except ConnectionClosed:
        return None


async def main(args):
    opts = dict(
        max_size=64 * MiB,          # room for the 16 MiB echo
        open_timeout=args.timeout,
        close_timeout=args.timeout,
        ping_interval=None,         # no keepalive pings mixed into the checks
        compression=None if args.no_compression else "deflate",
    )

    # Connection 1: data checks, then a normal close.
    try:
        ws = await connect(args.url, **opts)
    except Exception as e:  # noqa: BLE001
        report("connect", False, "%s: %s" % (type(e).__name__, e))
        return
    report("connect", True)
    ext = ws.response.headers.get("Sec-WebSocket-Extensions")
    print("  negotiated extensions: %s" % (ext or "none"), flush=True)
    await echo_checks(ws, args.timeout)
    await check("close-1000", close_check(ws, 1000, "bye", need_reason=False), args.timeout)

    # Connection 2: an application close code must be echoed with its reason.
    try:
        ws2 = await connect(args.url, **opts)
    except Exception as e:  # noqa: BLE001
        report("close-4000", False, "reconnect failed: %s: %s" % (type(e).__name__, e))
        return
    await check("close-4000", close_check(ws2, 4000, "custom", need_reason=True), args.timeout)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="websockets client interop checks against an echo server")
    ap.add_argument("url", help="ws://127.0.0.1:PORT of an echo server")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per check (default 30)")
    ap.add_argument("--total-timeout", type=float, default=120.0, help="seconds for the whole run (default 120)")
    ap.add_argument("--no-compression", action="store_true", help="do not offer permessage-deflate")
    args = ap.parse_args()
    async def bounded():
        # A hard bound on the whole run, on top of the per-check limits.
        try:
            await asyncio.wait_for(main(args), args.total_timeout)
        except asyncio.TimeoutError:
            report("total-time", False, "run exceeded %ss" % args.total_timeout)
    asyncio.run(bounded())
    failed = results.count(False)
    print("py_client: %d passed, %d failed" % (len(results) - failed, failed), flush=True)
    sys.exit(1 if failed or not results else 0)
