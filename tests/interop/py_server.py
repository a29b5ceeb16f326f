#!/usr/bin/env python3
"""Interop server: a Python `websockets` ECHO server for our Rust client.

    venv/bin/python py_server.py --port PORT [--duration 120] [--no-compression]

Listens on 127.0.0.1 only. Prints "listening PORT" (the real port, useful
with --port 0) once it accepts connections, echoes every message back with
its type, and exits after --duration seconds or on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import signal
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MiB = 1024 * 1024


async def echo(ws):
    try:
        async for msg in ws:  # str for text, bytes for binary: echoed as such
            await ws.send(msg)
    except ConnectionClosed:
        pass  # the peer went away mid-message; nothing to echo to


async def main(args):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    def on_signal():
        if not stop.done():
            stop.set_result(None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    async with serve(
        echo,
        "127.0.0.1",
        args.port,
        max_size=64 * MiB,
        # Keepalive pings off by default so tests see only their own traffic.
        ping_interval=args.ping_interval,
        compression=None if args.no_compression else "deflate",
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print("listening %d" % port, flush=True)
        try:
            await asyncio.wait_for(stop, args.duration)
        except asyncio.TimeoutError:
            pass
    print("py_server: stopped", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="websockets echo server on 127.0.0.1")
    ap.add_argument("--port", type=int, required=True, help="port, 0 for any free one")
    ap.add_argument("--duration", type=float, default=120.0, help="exit after this many seconds (default 120)")
    ap.add_argument("--ping-interval", type=float, default=None, help="send keepalive pings every N s (default off)")
    ap.add_argument("--no-compression", action="store_true", help="refuse permessage-deflate")
    asyncio.run(main(ap.parse_args()))
    sys.exit(0)
