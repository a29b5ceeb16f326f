#!/usr/bin/env python3
"""Interop server: a Python `websockets` ECHO server for our Rust client.

    venv/bin/python py_server.py --port PORT [--duration 120] [--no-compression]
        [--tls-cert PEM --tls-key PEM]

Listens on 127.0.0.1 only. Prints "listening PORT" (the real port, useful
with --port 0) once it accepts connections, echoes every message back with
its type, and exits after --duration seconds or on SIGTERM/SIGINT. With
--tls-cert and --tls-key it serves wss:// (TLS 1.2+, the certificate chain
and key from those PEM files) and says "listening PORT (wss)".

For each connection it prints two lines to stdout, so a caller can assert
what a client negotiated and sent (run.sh greps them):

    conn N extensions: permessage-deflate; ... (offered: permessage-deflate; ...)
    conn N closed 1000: received M messages (C compressed), B bytes as W on the wire

`extensions:` is the server's Sec-WebSocket-Extensions answer, or `none`;
`offered:` the client's request header, or `none`. "Compressed" counts
messages whose first frame had RSV1 set; B is message bytes after inflating,
W the frame payload bytes as they arrived.
"""

import argparse
import asyncio
import itertools
import signal
import ssl
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import DATA_OPCODES, Opcode

MiB = 1024 * 1024

conn_ids = itertools.count(1)


class Received:
    """Counts incoming data frames by hooking the negotiated
    permessage-deflate extension's decode (it sees every frame before it is
    inflated). Without the extension every message is plain; the handler
    counts those itself."""

    def __init__(self):
        self.msgs = self.compressed = self.bytes = self.wire = 0
        self.hooked = False

    def hook(self, ext):
        decode = ext.decode

        def hooked(frame, *, max_size=None):
            out = decode(frame, max_size=max_size)
            if frame.opcode in DATA_OPCODES:
                if frame.opcode is not Opcode.CONT:
                    self.msgs += 1
                    self.compressed += bool(frame.rsv1)
                self.wire += len(frame.data)
                self.bytes += len(out.data)
            return out

        ext.decode = hooked
        self.hooked = True


def header(headers, name):
    return ", ".join(headers.get_all(name)) or "none"


def on_handshake(ws, request, response):
    """process_response hook: runs after extensions are negotiated and before
    the response goes out, so no data frame has been parsed yet."""
    if response.status_code != 101:
        return None
    ws.edgews_id = next(conn_ids)
    ws.edgews_received = Received()
    for ext in ws.protocol.extensions:
        if ext.name == "permessage-deflate":
            ws.edgews_received.hook(ext)
    print("conn %d extensions: %s (offered: %s)" % (
        ws.edgews_id,
        header(response.headers, "Sec-WebSocket-Extensions"),
        header(request.headers, "Sec-WebSocket-Extensions")), flush=True)
    return None


async def echo(ws):
    r = ws.edgews_received
    try:
        async for msg in ws:  # str for text, bytes for binary: echoed as such
            if not r.hooked:  # plain messages: wire bytes = message bytes
                n = len(msg.encode()) if isinstance(msg, str) else len(msg)
                r.msgs, r.bytes, r.wire = r.msgs + 1, r.bytes + n, r.wire + n
            await ws.send(msg)
    except ConnectionClosed:
        pass  # the peer went away mid-message; nothing to echo to
    finally:
        print("conn %d closed %s: received %d messages (%d compressed), %d bytes as %d on the wire" % (
            ws.edgews_id, ws.close_code, r.msgs, r.compressed, r.bytes, r.wire), flush=True)


async def main(args):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    def on_signal():
        if not stop.done():
            stop.set_result(None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    async with serve(
        echo,
        "127.0.0.1",
        args.port,
        max_size=64 * MiB,
        # Keepalive pings off by default so tests see only their own traffic.
        ping_interval=args.ping_interval,
        compression=None if args.no_compression else "deflate",
        process_response=on_handshake,
        ssl=tls,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print("listening %d%s" % (port, " (wss)" if tls else ""), flush=True)
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
    ap.add_argument("--tls-cert", default=None, metavar="PEM", help="serve wss://: certificate chain (leaf first)")
    ap.add_argument("--tls-key", default=None, metavar="PEM", help="serve wss://: the certificate's private key")
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    asyncio.run(main(args))
    sys.exit(0)
