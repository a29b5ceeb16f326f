#!/usr/bin/env python3
"""Interop client: Python `websockets` against an ECHO server under test.

    venv/bin/python py_client.py ws://127.0.0.1:PORT [--timeout 30]
        [--total-timeout 120] [--no-compression] [--ca-file PEM]
        [--expect-deflate | --expect-no-deflate]
        [--expect-param NAME]... [--reject-param NAME]...
        [--expect-threshold BYTES] [--expect-takeover yes|no]

Prints "ok <name>" or "FAIL <name>: why" per check, then a summary line, and
exits 1 if any check failed. Every network wait is bounded by --timeout and
the whole run by --total-timeout.

permessage-deflate (RFC 7692) is offered unless --no-compression. Whatever
is negotiated, the data checks include large compressible text and random
(incompressible) binary, which must come back intact. With --expect-deflate
the server must accept the offer, and its echo of compressible text must
arrive compressed (RSV1 set, fewer bytes on the wire than in the message):
that proves compression server -> client, while every intact echo of what
this client compressed proves client -> server. --expect-no-deflate asserts
the server declined. The other --expect-* options assert parameters of the
server's answer and how its compressor behaves (see --help).

With a wss:// URL the client speaks TLS, trusting only the certificates in
--ca-file (a test CA; without it, the system's roots), with hostname
checks on; a "tls" check asserts the connection is encrypted and prints the
TLS version and cipher.
"""

import argparse
import asyncio
import os
import random
import ssl
import sys
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import DATA_OPCODES, Opcode

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


def json_like(size, seed=0):
    """`size` characters of ASCII JSON-like text: records with repeating keys
    and varying values, about as compressible as real API traffic (3-5x).
    Deterministic for a given seed; cut at exactly `size` characters."""
    rnd = random.Random(seed)
    names = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf")
    parts, total, i = ["["], 1, 0
    while total < size:
        rec = ('{"id":%d,"user":"%s-%04d","score":%d.%02d,"active":%s,'
               '"tags":["%s","%s"],"note":"%s"},' % (
                   i, rnd.choice(names), rnd.randrange(10000), rnd.randrange(1000),
                   rnd.randrange(100), rnd.choice(("true", "false")),
                   rnd.choice(names), rnd.choice(names),
                   "".join(rnd.choice("abcdefghij ") for _ in range(rnd.randrange(4, 20)))))
        parts.append(rec)
        total += len(rec)
        i += 1
    return "".join(parts)[:size]


class Wire:
    """What crosses the wire inside data frames, seen by hooking the
    negotiated permessage-deflate extension (Extension.decode/encode get
    every frame before inflating / after deflating). Counts messages, how
    many of them were compressed (RSV1 on the first frame), wire bytes (frame
    payloads as sent) and message bytes (after inflating / before deflating).
    Without the extension nothing is hooked and `active` is False."""

    FIELDS = ("in_msgs", "in_compressed", "in_wire", "in_bytes",
              "out_msgs", "out_compressed", "out_wire", "out_bytes")

    def __init__(self, ws):
        for f in self.FIELDS:
            setattr(self, f, 0)
        exts = [e for e in ws.protocol.extensions if e.name == "permessage-deflate"]
        self.active = bool(exts)
        self.ext = exts[0] if exts else None
        if not exts:
            return
        ext = exts[0]
        decode, encode = ext.decode, ext.encode

        def hooked_decode(frame, *, max_size=None):
            out = decode(frame, max_size=max_size)
            self._count("in", frame, out)
            return out

        def hooked_encode(frame):
            out = encode(frame)
            self._count("out", out, frame)
            return out

        ext.decode, ext.encode = hooked_decode, hooked_encode

    def _count(self, way, wire_frame, plain_frame):
        if wire_frame.opcode not in DATA_OPCODES:
            return
        if wire_frame.opcode is not Opcode.CONT:
            self._add(way + "_msgs", 1)
            if wire_frame.rsv1:
                self._add(way + "_compressed", 1)
        self._add(way + "_wire", len(wire_frame.data))
        self._add(way + "_bytes", len(plain_frame.data))

    def _add(self, field, n):
        setattr(self, field, getattr(self, field) + n)

    def snapshot(self):
        return {f: getattr(self, f) for f in self.FIELDS}

    def since(self, snap):
        return {f: getattr(self, f) - snap[f] for f in self.FIELDS}


def parse_extensions(header):
    """'a; p=1; q, b' -> [("a", {"p": "1", "q": None}), ("b", {})]."""
    out = []
    for item in filter(None, (x.strip() for x in header.split(","))):
        name, *params = [x.strip() for x in item.split(";")]
        kv = {}
        for p in filter(None, params):
            k, eq, v = p.partition("=")
            kv[k.strip()] = v.strip().strip('"') if eq else None
        out.append((name, kv))
    return out


async def fragments(parts):
    """An async iterator makes websockets send one frame per item."""
    for p in parts:
        yield p
        await asyncio.sleep(0)  # let each fragment go out on its own


async def echo_checks(ws, wire, args, timeout):
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
    await compression_checks(ws, wire, args, timeout)
    await check("binary", binary(), timeout)
    await check("fragmented-text", fragmented_text(), timeout)
    await check("fragmented-binary", fragmented_binary(), timeout)
    await check("binary-16MiB", big_binary(), timeout)
    await check("ping", ping(), timeout)
    await check("in-order-100", order(), timeout)


async def echo_measured(ws, wire, msg, what):
    """Echo one message; (why-or-None, wire counts of the exchange)."""
    snap = wire.snapshot()
    await ws.send(msg)
    why = expect(await ws.recv(), msg, what)
    return why, wire.since(snap)


def wire_note(d):
    """'in 1/1 compressed, 1048576 -> 251234 bytes (24%)'."""
    if not d["in_bytes"]:
        return "nothing received"
    return "in %d/%d compressed, %d -> %d wire bytes (%d%%)" % (
        d["in_compressed"], d["in_msgs"], d["in_bytes"], d["in_wire"],
        100 * d["in_wire"] // d["in_bytes"])


async def compression_checks(ws, wire, args, timeout):
    """Large compressible and incompressible messages (run whether or not
    deflate was negotiated: they must echo intact either way), then, where
    asked, assertions on how the server compressed its echoes."""
    seen = {}

    async def big_json():
        # One 1 MiB text message; with deflate the server must compress it.
        msg = json_like(MiB, seed=1)
        why, d = await echo_measured(ws, wire, msg, "1 MiB JSON-like echo")
        seen["json"] = d
        if why is None and wire.active:
            print("  1 MiB JSON-like text: %s" % wire_note(d), flush=True)
        return why

    async def random_binary():
        msg = os.urandom(256 * 1024)
        why, d = await echo_measured(ws, wire, msg, "256 KiB random echo")
        if why is None and wire.active:
            print("  256 KiB random binary: %s" % wire_note(d), flush=True)
        return why

    async def json_sequence():
        # Compressible messages of varying size interleaved with tiny ones
        # (below any sensible threshold): compressed and plain messages mixed
        # on one connection, through one (de)compression context.
        msgs = []
        for i in range(20):
            msgs.append(json_like(2048 + 997 * i, seed=100 + i))
            msgs.append("tiny %d" % i)
        for m in msgs:
            await ws.send(m)
        got = [await ws.recv() for _ in msgs]
        for i, (g, m) in enumerate(zip(got, msgs)):
            why = expect(g, m, "message %d of %d" % (i, len(msgs)))
            if why:
                return why
        return None

    async def fragmented_json():
        # A compressed message split over three frames (RSV1 on the first
        # only): the server must inflate across continuation frames.
        parts = [json_like(64 * 1024, seed=s) for s in (7, 8, 9)]
        await ws.send(fragments(parts))
        return expect(await ws.recv(), "".join(parts), "fragmented 192 KiB JSON echo")

    await check("text-json-1MiB", big_json(), timeout)
    await check("binary-random-256KiB", random_binary(), timeout)
    await check("json-sequence-40", json_sequence(), timeout)
    await check("fragmented-json-192KiB", fragmented_json(), timeout)

    if args.expect_deflate:
        d = seen.get("json")
        if not wire.active:
            report("server-deflates", False, "permessage-deflate not negotiated")
        elif d is None or not d["in_bytes"]:
            report("server-deflates", False, "the 1 MiB echo failed, nothing to judge")
        elif d["in_compressed"] < 1 or d["in_wire"] * 2 > d["in_bytes"]:
            report("server-deflates", False, "1 MiB JSON-like echo not compressed: %s" % wire_note(d))
        else:
            report("server-deflates", True)
        # What this client sent compressed is what the intact echoes prove
        # the server inflated; say so explicitly.
        report("client-deflated", wire.active and wire.out_compressed > 0,
               "this client compressed nothing (%d messages sent)" % wire.out_msgs)

    if args.expect_threshold is not None:
        await check("threshold-%d" % args.expect_threshold,
                    threshold_check(ws, wire, args.expect_threshold), timeout)
    if args.expect_takeover is not None:
        await check("context-takeover-%s" % args.expect_takeover,
                    takeover_check(ws, wire, args.expect_takeover == "yes"), timeout)


async def threshold_check(ws, wire, n):
    """Messages smaller than the threshold n go out plain, others may be
    compressed: a compressible message of n-1 bytes must come back
    uncompressed, one of exactly n bytes compressed (of 64 bytes if n is
    smaller, so that compressing it pays)."""
    if not wire.active:
        return "permessage-deflate not negotiated"
    small = json_like(n - 1, seed=21) if n > 1 else None
    if small is not None:
        why, d = await echo_measured(ws, wire, small, "%d-byte echo" % (n - 1))
        if why:
            return why
        if d["in_compressed"]:
            return "%d-byte message (below threshold %d) came back compressed" % (n - 1, n)
    big = json_like(max(n, 64), seed=22)
    why, d = await echo_measured(ws, wire, big, "%d-byte echo" % len(big))
    if why:
        return why
    if not d["in_compressed"]:
        return "%d-byte compressible message (threshold %d) came back uncompressed" % (len(big), n)
    print("  threshold %d: %d bytes sent plain, %d bytes compressed to %d"
          % (n, n - 1, len(big), d["in_wire"]), flush=True)
    return None


async def takeover_check(ws, wire, want):
    """Echo the same JSON-like text twice. With context takeover the second
    echo is mostly a back-reference into the first (a small fraction of its
    wire size); without, it costs the same again. The text is 2 KiB (less
    if the server announced a window under 4 KiB), so a back-reference can
    reach all of it even from a compressor on a 12-bit window that did not
    announce server_max_window_bits."""
    if not wire.active:
        return "permessage-deflate not negotiated"
    size = min(2048, (1 << wire.ext.remote_max_window_bits) // 2)
    msg = json_like(size, seed=31)
    sizes = []
    for k in range(2):
        why, d = await echo_measured(ws, wire, msg, "%d-byte echo #%d" % (size, k + 1))
        if why:
            return why
        if not d["in_compressed"]:
            return "%d-byte echo #%d came back uncompressed" % (size, k + 1)
        sizes.append(d["in_wire"])
    print("  same %d-byte message twice: %d then %d wire bytes" % ((size,) + tuple(sizes)), flush=True)
    if want and sizes[1] * 2 > sizes[0]:
        return "no context takeover: second copy took %d wire bytes, first %d" % (sizes[1], sizes[0])
    if not want and sizes[1] * 10 < sizes[0] * 9:
        return "context takeover used: second copy took %d wire bytes, first %d" % (sizes[1], sizes[0])
    return None


def negotiation_checks(ws, args):
    """Report what the handshake negotiated, as ok/FAIL lines if asked."""
    header = ", ".join(ws.response.headers.get_all("Sec-WebSocket-Extensions"))
    print("  negotiated extensions: %s" % (header or "none"), flush=True)
    exts = parse_extensions(header)
    pmd = [params for name, params in exts if name == "permessage-deflate"]
    active = [e for e in ws.protocol.extensions if e.name == "permessage-deflate"]
    if active:
        print("  in use: %r" % active[0], flush=True)
    if args.expect_deflate:
        if len(pmd) != 1 or len(active) != 1:
            report("negotiated-deflate", False,
                   "Sec-WebSocket-Extensions: %r, extensions in use %r" % (header, ws.protocol.extensions))
        else:
            report("negotiated-deflate", True)
    if args.expect_no_deflate:
        report("no-deflate", not pmd and not ws.protocol.extensions,
               "server accepted extensions: %r" % header)
    params = pmd[0] if len(pmd) == 1 else {}
    for name in args.expect_param:
        report("param-" + name, name in params,
               "%s missing from %r" % (name, header))
    for name in args.reject_param:
        report("no-param-" + name, len(pmd) == 1 and name not in params,
               ("%s present in %r" % (name, header)) if len(pmd) == 1 else "permessage-deflate not negotiated")


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


def tls_check(ws, url):
    """For wss://: the connection must run over TLS; print what it uses."""
    tls = ws.transport.get_extra_info("ssl_object")
    if tls is None:
        report("tls", False, "%s connected without TLS" % url)
        return
    print("  TLS: %s, %s, ALPN %s, server %s" % (
        tls.version(), tls.cipher()[0], tls.selected_alpn_protocol(),
        dict(x[0] for x in tls.getpeercert()["subject"]).get("commonName")), flush=True)
    report("tls", True)


def client_ssl(args):
    """The ssl context for wss:// (None for ws://): verification on, the
    trust anchors from --ca-file when given."""
    if not args.url.startswith("wss://"):
        return None
    return ssl.create_default_context(cafile=args.ca_file)


async def main(args):
    opts = dict(
        max_size=64 * MiB,          # room for the 16 MiB echo
        open_timeout=args.timeout,
        close_timeout=args.timeout,
        ping_interval=None,         # no keepalive pings mixed into the checks
        compression=None if args.no_compression else "deflate",
    )
    tls = client_ssl(args)
    if tls is not None:
        opts["ssl"] = tls

    # Connection 1: data checks, then a normal close.
    try:
        ws = await connect(args.url, **opts)
    except Exception as e:  # noqa: BLE001
        report("connect", False, "%s: %s" % (type(e).__name__, e))
        return
    report("connect", True)
    wire = Wire(ws)  # before any data frame crosses
    if args.url.startswith("wss://"):
        tls_check(ws, args.url)
    negotiation_checks(ws, args)
    await echo_checks(ws, wire, args, args.timeout)
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
    ap.add_argument("url", help="ws://127.0.0.1:PORT (or wss://localhost:PORT) of an echo server")
    ap.add_argument("--ca-file", default=None, metavar="PEM",
                    help="for wss://: trust only the certificates in PEM (default: the system's roots)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per check (default 30)")
    ap.add_argument("--total-timeout", type=float, default=120.0, help="seconds for the whole run (default 120)")
    ap.add_argument("--no-compression", action="store_true", help="do not offer permessage-deflate")
    want = ap.add_mutually_exclusive_group()
    want.add_argument("--expect-deflate", action="store_true",
                      help="the server must accept permessage-deflate and compress its echo of 1 MiB of text")
    want.add_argument("--expect-no-deflate", action="store_true",
                      help="the server must decline every extension")
    ap.add_argument("--expect-param", action="append", default=[], metavar="NAME",
                    help="the server's permessage-deflate answer must carry NAME "
                         "(e.g. server_no_context_takeover); repeatable")
    ap.add_argument("--reject-param", action="append", default=[], metavar="NAME",
                    help="the server's permessage-deflate answer must not carry NAME; repeatable")
    ap.add_argument("--expect-threshold", type=int, default=None, metavar="BYTES",
                    help="a compressible echo of BYTES-1 bytes must come back uncompressed, one of BYTES bytes compressed")
    ap.add_argument("--expect-takeover", choices=("yes", "no"), default=None,
                    help="whether the server's compressor must keep its context between messages")
    args = ap.parse_args()
    if args.no_compression and (args.expect_deflate or args.expect_param or args.reject_param
                                or args.expect_threshold is not None or args.expect_takeover):
        ap.error("--no-compression contradicts the deflate expectations")
    if args.ca_file and not args.url.startswith("wss://"):
        ap.error("--ca-file is for wss:// URLs")
    if args.expect_threshold is not None and args.expect_threshold < 1:
        ap.error("--expect-threshold must be at least 1")
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
