#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/corpus/<target>/<name>.

Run from anywhere: python3 fuzz/make_seeds.py. The files are committed;
this script only documents how they were made and regenerates them (it
overwrites files of the same name and leaves others alone).

Most targets read a chunking prefix first (see fuzz/src/oracles.rs):
byte 0 = n | flags << 3, then n chunk-size bytes, then the body.
"""
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def prefix(sizes=(), flags=0):
    assert len(sizes) < 8
    return bytes([len(sizes) | (flags << 3)]) + bytes(sizes)


def frame(op, payload=b"", fin=True, mask=None, rsv=0):
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    mbit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask is None:
        return head + payload
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10

# --- frame_decode: raw frames, no prefix ------------------------------------
fd = "frame_decode"
write(fd, "rfc5.7_single_unmasked_text_hello", bytes.fromhex("810548656c6c6f"))
write(fd, "rfc5.7_single_masked_text_hello", bytes.fromhex("818537fa213d7f9f4d5158"))
write(fd, "rfc5.7_fragmented_unmasked_text", bytes.fromhex("010348656c" "80026c6f"))
write(fd, "rfc5.7_unmasked_ping_masked_pong",
      bytes.fromhex("890548656c6c6f" "8a8537fa213d7f9f4d5158"))
write(fd, "rfc5.7_256_byte_binary", bytes.fromhex("827e0100") + bytes(256))
write(fd, "rfc5.7_64k_binary_header_only", bytes.fromhex("827f0000000000010000"))
write(fd, "masked_64bit_length_header", bytes.fromhex("82ff0000000000010000") + MASK)
write(fd, "close_1000_masked", frame(CLOSE, close_payload(1000, b"bye"), mask=MASK))
write(fd, "reserved_opcode_3", bytes.fromhex("8300"))
write(fd, "rsv1_set", bytes.fromhex("c100"))
write(fd, "non_minimal_16bit_length", bytes.fromhex("827e007d"))
write(fd, "non_minimal_64bit_length", bytes.fromhex("827f000000000000ffff"))
write(fd, "length_msb_set", bytes.fromhex("827f8000000000000000"))
write(fd, "fragmented_ping", bytes.fromhex("0900"))
write(fd, "ping_126_bytes", bytes.fromhex("897e007e") + bytes(126))
write(fd, "three_frames_mixed",
      frame(TEXT, b"a", fin=False, mask=MASK) + frame(PING, b"p", mask=MASK)
      + frame(CONT, b"b", mask=MASK))

# --- handshake_request: prefix + request head --------------------------------
hr = "handshake_request"
RFC_REQ = (b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: " + RFC_KEY + b"\r\n"
           b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
ALLOWLIST = 1 << 1   # flags: origin policy = allow list
ANY = 2 << 1         # flags: origin policy = any
TIMEOUT = 1          # flags: end with the handshake timer
write(hr, "rfc1.2_upgrade_cross_origin_refused", prefix() + RFC_REQ)
write(hr, "rfc1.2_upgrade_origin_allowlisted", prefix(flags=ALLOWLIST) + RFC_REQ)
write(hr, "rfc1.2_upgrade_any_origin_byte_by_byte", prefix([0], flags=ANY) + RFC_REQ)
write(hr, "rfc1.2_upgrade_any_origin_chunks_7_13", prefix([6, 12], flags=ANY) + RFC_REQ)
SIMPLE = (b"GET / HTTP/1.1\r\nHost: localhost:9001\r\nUpgrade: websocket\r\n"
          b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + RFC_KEY + b"\r\n"
          b"Sec-WebSocket-Version: 13\r\n\r\n")
write(hr, "upgrade_keepalive_upgrade_no_origin", prefix() + SIMPLE)
write(hr, "upgrade_same_origin", prefix() + SIMPLE.replace(
    b"\r\n\r\n", b"\r\nOrigin: http://localhost:9001\r\n\r\n"))
write(hr, "upgrade_lowercase_headers", prefix() + SIMPLE.lower().replace(
    b"get / http/1.1", b"GET / HTTP/1.1").replace(RFC_KEY.lower(), RFC_KEY))
write(hr, "upgrade_followed_by_frame", prefix([3]) + SIMPLE
      + frame(TEXT, b"Hello", mask=MASK))
write(hr, "plain_http_get", prefix() + b"GET /index.html?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
write(hr, "post_upgrade_405", prefix() + SIMPLE.replace(b"GET", b"POST", 1))
write(hr, "http10_upgrade", prefix() + SIMPLE.replace(b"HTTP/1.1", b"HTTP/1.0", 1))
write(hr, "version_8_426", prefix() + SIMPLE.replace(b"Version: 13", b"Version: 8"))
write(hr, "bad_key_400", prefix() + SIMPLE.replace(RFC_KEY, b"c2hvcnQ="))
write(hr, "missing_host_400", prefix() + SIMPLE.replace(b"Host: localhost:9001\r\n", b""))
write(hr, "missing_connection_400", prefix() + SIMPLE.replace(
    b"Connection: keep-alive, Upgrade\r\n", b""))
write(hr, "too_many_headers_431", prefix() + SIMPLE.replace(
    b"\r\n\r\n", b"\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(20)) + b"\r\n"))
write(hr, "head_too_large_431", prefix([0xFF]) + b"GET / HTTP/1.1\r\nX: " + b"a" * 2100)
write(hr, "incomplete_head_eof", prefix() + SIMPLE[:-2])
write(hr, "incomplete_head_timeout_408", prefix(flags=TIMEOUT) + SIMPLE[:40])
write(hr, "garbage_line", prefix() + b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\r\n\r\n")
write(hr, "bare_lf_head", prefix() + SIMPLE.replace(b"\r\n", b"\n"))

# --- handshake_response: prefix + response head ------------------------------
hs = "handshake_response"
OK = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      b"Sec-WebSocket-Accept: " + RFC_ACCEPT + b"\r\n")
write(hs, "rfc_101_placeholder_accept", prefix() + OK + b"\r\n")
write(hs, "rfc_101_byte_by_byte", prefix([0]) + OK + b"\r\n")
write(hs, "101_with_subprotocol_chat", prefix([10, 30]) + OK
      + b"Sec-WebSocket-Protocol: chat\r\n\r\n")
write(hs, "101_with_unoffered_subprotocol", prefix() + OK
      + b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
write(hs, "101_with_extension", prefix() + OK
      + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
write(hs, "101_wrong_accept", prefix() + OK.replace(RFC_ACCEPT, b"AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
      + b"\r\n")
write(hs, "101_without_upgrade", prefix() + OK.replace(b"Upgrade: websocket\r\n", b"") + b"\r\n")
write(hs, "101_followed_by_frame", prefix() + OK + b"\r\n" + frame(TEXT, b"Hello"))
write(hs, "403_forbidden", prefix() + b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
write(hs, "200_ok", prefix() + b"HTTP/1.1 200 OK\r\n\r\nhello")
write(hs, "garbage", prefix() + b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
write(hs, "incomplete", prefix() + OK)

# --- server_connection / client_connection: prefix + frames ------------------
TIMERS, ECHO, APP_CLOSE = 1, 2, 4
for target, mask in (("server_connection", MASK), ("client_connection", None)):
    side = "masked" if mask else "unmasked"
    f = lambda op, p=b"", fin=True: frame(op, p, fin=fin, mask=mask)
    write(target, f"rfc5.7_{side}_text_hello", prefix() + f(TEXT, b"Hello"))
    write(target, f"rfc5.7_{side}_fragmented_text", prefix([2])
          + f(TEXT, b"Hel", fin=False) + f(CONT, b"lo"))
    write(target, f"{side}_fragments_with_ping_and_pong_between", prefix([0x80, 5])
          + f(TEXT, b"Hel", fin=False) + f(PING, b"p1") + f(CONT, b"", fin=False)
          + f(PONG, b"unsolicited") + f(CONT, b"lo"))
    write(target, f"rfc5.7_{side}_256_byte_binary_echo", prefix(flags=ECHO)
          + f(BINARY, bytes(range(256))))
    write(target, f"{side}_64k_binary_in_chunks", prefix([0xFF, 0x90, 0x03])
          + f(BINARY, bytes(i * 7 & 0xFF for i in range(65536))))
    write(target, f"{side}_ping_125", prefix() + f(PING, b"\x07" * 125))
    write(target, f"{side}_close_1000_with_reason", prefix() + f(CLOSE, close_payload(1000, b"bye"))
          + f(TEXT, b"ignored"))
    write(target, f"{side}_close_empty", prefix() + f(CLOSE))
    write(target, f"{side}_close_bad_code_1005", prefix() + f(CLOSE, close_payload(1005)))
    write(target, f"{side}_close_one_byte", prefix() + f(CLOSE, b"\x03"))
    write(target, f"{side}_invalid_utf8_text", prefix([1]) + f(TEXT, b"Hello \xff world"))
    write(target, f"{side}_code_point_split_across_fragments", prefix([0])
          + f(TEXT, "κό".encode()[:3], fin=False) + f(CONT, "κό".encode()[3:]))
    write(target, f"{side}_text_ending_inside_code_point", prefix()
          + f(TEXT, "€".encode()[:2]))
    write(target, f"{side}_frame_over_limit_header", prefix() + frame(BINARY, b"", mask=mask)[:1]
          + bytes([0xFF if mask else 0x7F]) + struct.pack(">Q", 70000) + (mask or b""))
    write(target, f"{side}_65_empty_fragments", prefix()
          + f(BINARY, b"", fin=False) + f(CONT, b"", fin=False) * 63 + f(CONT, b""))
    write(target, f"{side}_unexpected_continuation", prefix() + f(CONT, b"x"))
    write(target, f"{side}_reserved_opcode", prefix() + bytes([0x83, 0x80 if mask else 0])
          + (mask or b""))
    write(target, f"{side}_echo_then_timers", prefix([4], flags=ECHO | TIMERS)
          + f(TEXT, b"echo me") + f(BINARY, b"\x00\x01"))
    write(target, f"{side}_app_close_then_data_and_close", prefix([8], flags=APP_CLOSE)
          + f(TEXT, b"first") + f(TEXT, b"discarded") + f(PING, b"no pong")
          + f(CLOSE, close_payload(1000)))
    write(target, f"{side}_app_close_then_close_timeout", prefix([8], flags=APP_CLOSE | TIMERS)
          + f(TEXT, b"first") + f(BINARY, b"x" * 300))
    write(target, f"{side}_wrong_masking", prefix()
          + frame(TEXT, b"Hello", mask=None if mask else MASK))

# --- utf8_incremental: prefix + bytes ----------------------------------------
u = "utf8_incremental"
write(u, "ascii_hello", prefix() + b"Hello, world")
write(u, "greek_kosme_byte_by_byte", prefix([0]) + "κόσμε".encode())
write(u, "mixed_every_length_split", prefix([0, 1, 2, 3]) + "a é € 𝄞 \U0010FFFF z".encode())
write(u, "surrogate_ed_a0_80", prefix([0]) + b"ab\xed\xa0\x80cd")
write(u, "overlong_c0_af", prefix([0]) + b"\xc0\xaf")
write(u, "overlong_e0_80_af", prefix([1]) + b"x\xe0\x80\xaf")
write(u, "above_max_f4_90", prefix([2]) + b"ab\xf4\x90\x80\x80")
write(u, "five_byte_f8", prefix() + b"\xf8\x88\x80\x80\x80")
write(u, "truncated_euro_at_end", prefix([1]) + b"price \xe2\x82")
write(u, "invalid_ff_mid_piece", prefix([5]) + b"hello wor\xffld")
write(u, "unfinished_then_ascii", prefix([0]) + b"\xe2\x82A")
write(u, "max_boundaries", prefix([3])
      + "\u007f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff\ud7ff\ue000".encode())

# --- roundtrip: prefix + operations ------------------------------------------
r = "roundtrip"
def msg(text=False, length=5, frags=0, many=False, pings=None, zero_key=False, shifts=b"",
        big=False, huge=False):
    tag = (7 if big else 0) | (0x80 if huge else 0) | (0x08 if text else 0) | (0x10 if many else 0) \
        | (0x20 if pings is not None else 0) | (0x40 if zero_key else 0)
    out = bytes([tag]) + struct.pack(">H", length) + bytes([frags])
    if pings is not None:
        out += bytes([pings])
    return out + MASK + shifts
write(r, "one_text_message", prefix() + msg(text=True))
write(r, "one_binary_message_zero_key", prefix() + msg(length=300, zero_key=True))
write(r, "fragmented_text_with_pings", prefix([0x81])
      + msg(text=True, length=64, frags=3, pings=0x07, shifts=b"\x05\x09\x11"))
write(r, "64_fragments", prefix() + msg(length=1000, frags=63, many=True))
write(r, "big_binary_256k", prefix([0xFF]) + msg(length=0xFFFF, big=True, huge=True, frags=1,
                                                  shifts=b"\x10\x20\x30"))
write(r, "big_text_64k_plus", prefix([0xC0]) + msg(text=True, length=0x4001, big=True))
write(r, "ping_pong_close_with_reason", prefix()
      + bytes([4, 10]) + MASK + bytes([5, 20]) + MASK + bytes([6, 3]) + MASK + bytes([40])
      + b"junk after close")
write(r, "empty_close", prefix([0]) + msg() + bytes([6, 16]) + MASK)
write(r, "messages_byte_by_byte", prefix([0]) + msg(text=True, length=20, frags=2)
      + msg(length=9) + bytes([4, 3]) + MASK)

# --- pubsub_control: one control message as text, no prefix -----------------
pc = "pubsub_control"
write(pc, "subscribe", b'{"op":"subscribe","topic":"news"}')
write(pc, "unsubscribe_escaped_topic", b'{"op":"unsubscribe","topic":"caf\\u00e9 \\"x\\""}')
write(pc, "publish_object_echo", b'{"op":"publish","topic":"t","data":{"a": [1, 2.5, null]},"echo":true}')
write(pc, "publish_null_data", b' {"data":null,"topic":"t","op":"publish"} ')
write(pc, "publish_without_data", b'{"op":"publish","topic":"t"}')
write(pc, "subscribe_with_data", b'{"op":"subscribe","topic":"t","data":1}')
write(pc, "unknown_op", b'{"op":"dance","topic":"t"}')
write(pc, "unknown_field", b'{"op":"publish","topic":"t","data":1,"x":2}')
write(pc, "duplicate_op", b'{"op":"publish","op":"subscribe","topic":"t","data":1}')
write(pc, "array_not_object", b'["subscribe","t"]')
write(pc, "topic_201_bytes", b'{"op":"subscribe","topic":"' + b"t" * 201 + b'"}')
write(pc, "topic_control_char", b'{"op":"subscribe","topic":"a\\u0001b"}')
write(pc, "deep_data", b'{"op":"publish","topic":"t","data":' + b"[" * 200 + b"]" * 200 + b"}")
write(pc, "over_limit", b'{"op":"publish","topic":"t","data":"' + b"x" * 2100 + b'"}')
write(pc, "truncated", b'{"op":"publish","topic":"t","data":[1,')

# --- chat_message: one chat message as text, no prefix ----------------------
cm = "chat_message"
write(cm, "message", b'{"type":"message","room":"lobby","text":"hi"}')
write(cm, "extra_fields_ignored", b'{"from":"mallory","id":9,"ts":{"x":[1]},"type":"message","room":"r","text":"hi"}')
write(cm, "escaped_text", b'{"type":"message","room":"caf\\u00e9","text":"\\ud83d\\ude00 \\"q\\""}')
write(cm, "text_not_a_string", b'{"type":"message","room":"r","text":5}')
write(cm, "blank_text", b'{"type":"message","room":"r","text":" \\n "}')
write(cm, "text_65_bytes", b'{"type":"message","room":"r","text":"' + b"x" * 65 + b'"}')
write(cm, "unknown_type", b'{"type":"shout","room":"r","text":"hi"}')
write(cm, "missing_type", b'{"room":"r","text":"hi"}')
write(cm, "duplicate_text", b'{"type":"message","room":"r","text":"a","text":"b"}')
write(cm, "array", b'[1,2,3]')
write(cm, "not_json", b"not json at all")
write(cm, "over_limit", b'{"type":"message","room":"r","text":"' + b"y" * 1500 + b'"}')
write(cm, "deep_unknown_field", b'{"type":"message","room":"r","text":"hi","x":' + b"[" * 200 + b"]" * 200 + b"}")
write(cm, "lone_surrogate_in_unknown_field", b'{"type":"message","room":"r","text":"xxeeex]xxxxxxxxxxxxxxxx\\r","t":"xxxxxxxx\\ude00xxxxxXxx"}')
write(pc, "lone_surrogate_in_data", b'{"op":"publish","topic":"t","data":["\\ud800"]}')

# --- deflate: prefix + 8 parameter bytes + operations (fuzz/src/oracles/deflate.rs)
df = "deflate"
ECHO = 1
HELLO = bytes.fromhex("f248cdc9c90700")  # RFC 7692 7.2.3.1: "Hello" compressed


def dmax(max_msg):
    """The parameter u16 whose max_message_size is max_msg."""
    return min(range(65536), key=lambda v: (abs(1 + (v ^ 0x8000) ** 2 // 16384 - max_msg), v))


def dparams(client=False, shared=False, snct=False, cnct=False, S=None, C=None, C_value=True,
            no_ext=False, peer_shared=False, win=12, cwin=12, level=6, mem=5, plevel=6, pmem=8,
            pwin=15, max_frags=0, max_msg=(64 << 10) + 1):
    p0 = (int(client) | int(shared) << 1 | int(snct) << 2 | int(cnct) << 3
          | int(S is not None) << 4 | int(C is not None) << 5 | int(C_value) << 6
          | int(no_ext) << 7)
    p1 = ((S or 8) - 8) | ((C or 8) - 8) << 3 | int(peer_shared) << 6
    p2 = (win - 9) | (cwin - 9) << 4
    p3 = level | (mem - 1) << 4
    p4 = plevel | (pmem - 1) << 4
    p5 = (pwin - 9) | max_frags << 4
    return bytes([p0, p1, p2, p3, p4, p5]) + struct.pack(">H", dmax(max_msg))


def rt(length, text=False, noise=False, many=False, pings=None, near=False, seed=b"",
       frags=1, shifts=None):
    """A round trip: a message the peer engine compresses, cut into frags."""
    t = int(text) << 3 | int(noise) << 4 | int(many) << 5 | int(pings is not None) << 6 \
        | int(near) << 7
    shifts = shifts if shifts is not None else bytes(frags - 1)
    return (bytes([t]) + struct.pack(">H", length) + bytes([len(seed)]) + seed
            + bytes([frags - 1]) + (bytes([pings]) if pings is not None else b"") + shifts)


def arb(payloads, text=False, no_rsv1=False, rsv1_cont=False, zero_key=False, long=False):
    """Arbitrary payloads as one message, RSV1 on its first frame."""
    t = 3 | int(text) << 3 | int(no_rsv1) << 4 | int(rsv1_cont) << 5 | int(zero_key) << 6 \
        | int(long) << 7
    out = bytes([t, len(payloads) - 1])
    for pl in payloads:
        out += (struct.pack(">H", len(pl)) if long else bytes([len(pl)])) + pl
    return out


def ctrl(payload, pong=False, rsv1=False):
    return bytes([4 | int(pong) << 3 | int(rsv1) << 4, len(payload)]) + payload


def raw(data):
    return bytes([5, len(data)]) + data


def dclose(sel=0):
    return bytes([6, sel])


def plain(data, text=False):
    return bytes([7 | int(text) << 3, len(data)]) + data


def deflated(data, level=6, wbits=15):
    """Raw DEFLATE as RFC 7692 7.2.1 sends it: sync flush, tail removed."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


CLIENT = dparams(client=True)  # answer "permessage-deflate": server keeps context
SERVER = dparams()             # offer "permessage-deflate", dedicated server
# RFC 7692 7.2.3's examples, to a client (unmasked) and to a server (masked)
for side, p in (("client", CLIENT), ("server", SERVER)):
    write(df, f"rfc7692_7.2.3.1_hello_{side}", prefix() + p + arb([HELLO], text=True))
    write(df, f"rfc7692_7.2.3.1_hello_fragmented_{side}", prefix([2]) + p
          + arb([HELLO[:3], HELLO[3:]], text=True))
    write(df, f"rfc7692_7.2.3.2_hello_twice_context_takeover_{side}", prefix() + p
          + arb([HELLO], text=True) + arb([bytes.fromhex("f200110000")], text=True))
    write(df, f"rfc7692_7.2.3.3_stored_block_{side}", prefix([0]) + p
          + arb([bytes.fromhex("000500faff48656c6c6f00")], text=True))
    write(df, f"rfc7692_7.2.3.4_bfinal_then_hello_{side}", prefix() + p
          + arb([bytes.fromhex("f348cdc9c9070000")], text=True) + arb([HELLO], text=True))
    write(df, f"rfc7692_7.2.3.5_two_blocks_{side}", prefix([3]) + p
          + arb([bytes.fromhex("f24805000000ffffcac9c90700")], text=True))
write(df, "rfc7692_hello_then_round_trips_echo", prefix([5], flags=ECHO) + SERVER
      + arb([HELLO], text=True) + rt(300, text=True, seed=b"Hello, ") + rt(4000, noise=True))
# negotiation variants, each with round trips that must come back identical
write(df, "shared_server_round_trips", prefix() + dparams(shared=True)
      + rt(1000, text=True, seed="κόσμε ".encode()) + rt(0) + rt(70, seed=b"ab"))
write(df, "dedicated_server_all_parameters_window_9", prefix([0x81], flags=ECHO)
      + dparams(snct=True, cnct=True, S=9, C=9, win=9, cwin=9, mem=1, level=9)
      + rt(3000, text=True, noise=True) + rt(3000, text=True, noise=True))
write(df, "client_offer_without_value_smaller_window", prefix() + dparams(C=15, C_value=False,
      cwin=10) + rt(2000, seed=b"abcabc") + rt(2000, seed=b"abcabc"))
write(df, "client_role_answer_with_windows", prefix([7, 0x83], flags=ECHO)
      + dparams(client=True, snct=True, S=10, C=11, pwin=10, plevel=1)
      + rt(4000, text=True, noise=True, frags=3, shifts=b"\x10\x20") + ctrl(b"ping"))
write(df, "client_role_peer_shared_server", prefix() + dparams(client=True, peer_shared=True)
      + rt(500, seed=b"xyz") + rt(500, seed=b"xyz"))
write(df, "client_role_context_takeover_peer_mem_level_9", prefix([0x90])
      + dparams(client=True, pmem=9, plevel=9, pwin=15)
      + rt(4000, text=True, seed=b"{\"k\":1}") + rt(4000, text=True, seed=b"{\"k\":1}"))
write(df, "fragmented_round_trip_with_pings", prefix([1, 9]) + SERVER
      + rt(3000, text=True, noise=True, many=True, frags=12, pings=0xff))
write(df, "near_limit_noise_64k", prefix([0xff]) + dparams(max_msg=64 << 10)
      + rt(32, near=True, noise=True) + rt(31, near=True, noise=True))
write(df, "over_limit_round_trip_1009", prefix() + dparams(max_msg=1000) + rt(33, near=True))
write(df, "too_many_fragments_1009", prefix() + dparams(max_frags=3) + rt(100, frags=4))
write(df, "answer_server_window_8", prefix(flags=ECHO) + dparams(client=True, S=8)
      + rt(200, seed=b"a") + arb([HELLO]))
write(df, "offer_server_window_8_declined", prefix() + dparams(S=8) + rt(200) + arb([HELLO]))
write(df, "no_extension_rsv1_1002", prefix() + dparams(no_ext=True) + plain(b"plain")
      + arb([HELLO]))
# what the receiver refuses
write(df, "bomb_1m_zeros_64k_limit_1009", prefix([0xff]) + dparams(max_msg=64 << 10)
      + arb([deflated(bytes(1 << 20))], long=True))
write(df, "bomb_fragmented_1009", prefix() + dparams(client=True, max_msg=4096)
      + arb([deflated(bytes(100000))[:300], deflated(bytes(100000))[300:]], long=True))
write(df, "reserved_btype_1007", prefix() + SERVER + arb([b"\xff\xff\xff"]))
write(df, "inflated_text_not_utf8_1007", prefix([0x80]) + CLIENT
      + arb([deflated(b"\xff" * 300)], text=True))
write(df, "rsv1_on_continuation_1002", prefix() + SERVER
      + arb([HELLO[:3], HELLO[3:]], text=True, rsv1_cont=True))
write(df, "rsv1_on_ping_1002", prefix() + SERVER + ctrl(b"p", rsv1=True))
write(df, "uncompressed_then_compressed", prefix() + CLIENT + plain(b"plain", text=True)
      + arb([b"plain"], no_rsv1=True) + arb([HELLO]))
write(df, "close_after_round_trip", prefix([2]) + SERVER + rt(10, seed=b"bye") + ctrl(b"", pong=True)
      + dclose(8) + raw(b"\xc1\x00"))
write(df, "raw_garbage_after_message", prefix() + CLIENT + arb([HELLO]) + raw(b"\xc1\x7f\xff\xff"))

# --- tls: an in-memory rustls client, the server's TLS layer, the engine -----
# Layout (see plan() in fuzz/src/oracles/tls.rs; arbitrary reads integers
# little-endian): flags, n + n arrival sizes, m + m read-buffer sizes,
# write room, budget, k + k faults (u16 offset, kind, value), w + w write
# sizes, then the client's plaintext.
TLS_BOTH, TLS13, TLS12 = 0, 1, 2
UPGRADE, T_ECHO, NOTIFY, FIN, ROOM, SMALL_BUDGET = 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
FLIP, INSERT, TRUNCATE = 0, 1, 2


def tls(flags, body=b"", arrivals=(), bufs=(), room=0, budget=0, faults=(), writes=()):
    assert len(arrivals) < 8 and len(bufs) < 4 and len(faults) < 4 and len(writes) < 8
    out = bytes([flags, len(arrivals)]) + bytes(arrivals)
    out += bytes([len(bufs)]) + bytes(bufs) + bytes([room, budget, len(faults)])
    for at, kind, value in faults:
        out += struct.pack("<HBB", at, kind, value)
    return out + bytes([len(writes)]) + bytes(writes) + body


def m(op, payload=b"", fin=True):
    return frame(op, payload, fin=fin, mask=MASK)


REQUEST = (b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: " + RFC_KEY
           + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
HELLO_BYE = m(TEXT, b"Hello") + m(CLOSE, close_payload(1000, b"bye"))
t = "tls"
write(t, "tls13_hello_echo_close_notify", tls(TLS13 | UPGRADE | T_ECHO | NOTIFY, HELLO_BYE))
write(t, "tls12_hello_echo_fin", tls(TLS12 | UPGRADE | T_ECHO | FIN, HELLO_BYE))
write(t, "tls13_records_arrive_in_small_pieces", tls(
    TLS13 | UPGRADE | T_ECHO | NOTIFY, m(TEXT, b"Hel", fin=False) + m(PING, b"p")
    + m(CONT, b"lo") + m(BINARY, bytes(range(256)) * 8), arrivals=[0, 0x10, 0x85],
    bufs=[0, 255], writes=[3, 0x81, 7]))
write(t, "tls13_20k_echo_through_small_write_room", tls(
    TLS_BOTH | UPGRADE | T_ECHO | FIN | ROOM, m(BINARY, bytes(i % 251 for i in range(20000))),
    room=0x80, writes=[0xFF, 0x90]))
write(t, "request_split_across_records_small_budget", tls(
    TLS13 | T_ECHO | NOTIFY | SMALL_BUDGET, REQUEST + b"".join(m(TEXT, b"%d" % i)
    for i in range(20)), budget=1, writes=[9, 30, 0]))
write(t, "plain_http_request_gets_404", tls(TLS12 | FIN, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
write(t, "fault_flip_in_client_hello", tls(TLS13 | UPGRADE | FIN, HELLO_BYE,
      faults=[(40, FLIP, 0x10)]))
write(t, "fault_flip_in_application_data", tls(TLS13 | UPGRADE | T_ECHO, HELLO_BYE * 4,
      faults=[(450, FLIP, 0x01)], arrivals=[0x83]))
write(t, "fault_garbage_before_client_hello", tls(TLS12 | UPGRADE, HELLO_BYE,
      faults=[(0, INSERT, 0x47)]))
write(t, "fault_truncated_mid_record", tls(TLS_BOTH | UPGRADE | T_ECHO, HELLO_BYE * 8,
      faults=[(650, TRUNCATE, 0)], arrivals=[0x20]))

# --- resp_decode: raw RESP2, no prefix (limits: RESP_LIMITS in -------------
# fuzz/src/oracles/redis.rs: bulk 1024, 16 elements, depth 4, line 64)
rd = "resp_decode"


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def array(*items):
    return b"*%d\r\n" % len(items) + b"".join(items)


write(rd, "simple_ok", b"+OK\r\n")
write(rd, "error_reply", b"-ERR unknown command 'FOO'\r\n")
write(rd, "integers_min_max_zero", b":-9223372036854775808\r\n:9223372036854775807\r\n:0\r\n")
write(rd, "bulk_hello", bulk(b"hello"))
write(rd, "bulk_binary_with_crlf_inside", bulk(b"\x00\r\n\xff"))
write(rd, "null_bulk_null_array_empty_array", b"$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n")
write(rd, "subscribe_reply", array(bulk(b"subscribe"), bulk(b"edgews:news"), b":1\r\n"))
write(rd, "message_push", array(bulk(b"message"), bulk(b"edgews:news"), bulk(b"EW\x01payload")))
write(rd, "pmessage_push", array(bulk(b"pmessage"), bulk(b"edgews:*"), bulk(b"edgews:a"),
                                 bulk(b"x")))
write(rd, "replies_back_to_back", b"+OK\r\n:3\r\n" + array(bulk(b"unsubscribe"), b"$-1\r\n",
                                                           b":0\r\n") + b"+PONG\r\n")
write(rd, "nested_depth_4", array(array(array(array(b":1\r\n"), b"*0\r\n")), b"+x\r\n"))
write(rd, "nested_depth_5_too_deep", array(array(array(array(array(b":1\r\n"))))))
write(rd, "partial_message_push", array(bulk(b"message"), bulk(b"t"), bulk(b"abc"))[:-4])
write(rd, "bulk_1025_too_long_header_only", b"$1025\r\n")
write(rd, "bulk_1024_partial", b"$1024\r\n" + b"z" * 100)
write(rd, "array_17_too_many", b"*17\r\n" + b":1\r\n" * 17)
write(rd, "line_65_too_long", b"+" + b"a" * 65 + b"\r\n")
write(rd, "leading_zeros_and_minus_zero", b"$003\r\nabc\r\n:-0\r\n:007\r\n")
write(rd, "integer_overflow", b":9223372036854775808\r\n")
write(rd, "negative_length_minus_2", b"$-2\r\n")
write(rd, "bulk_missing_crlf", b"$3\r\nabcde")
write(rd, "bare_lf_line", b"+OK\n")
write(rd, "unknown_type_resp3_map", b"%1\r\n+a\r\n:1\r\n")
write(rd, "inline_command_garbage", b"PING\r\n")

# --- redis_envelope: one envelope (crates/edgews/src/redis/envelope.rs) ------
re_ = "redis_envelope"


def envelope(kind, topic, payload, seq=1, instance=0x1122334455667788, magic=b"EW\x01",
             topic_len=None):
    n = len(topic) if topic_len is None else topic_len
    return (magic + struct.pack(">QQBH", instance, seq, kind, n) + topic + payload)


write(re_, "text_hello", envelope(1, b"news", b"hello"))
write(re_, "binary_any_bytes", envelope(2, b"bin", bytes(range(256)), seq=7))
write(re_, "chat_event_json", envelope(3, "lobby".encode(), b'{"type":"message","text":"hi"}'))
write(re_, "empty_topic_empty_payload_max_numbers",
      envelope(1, b"", b"", seq=2**64 - 1, instance=2**64 - 1))
write(re_, "text_multibyte_topic_and_payload", envelope(1, "café".encode(), "κόσμε".encode()))
write(re_, "bad_magic", envelope(1, b"t", b"x", magic=b"XW\x01"))
write(re_, "version_2", envelope(1, b"t", b"x", magic=b"EW\x02"))
write(re_, "kind_0", envelope(0, b"t", b"x"))
write(re_, "kind_4", envelope(4, b"t", b"x"))
write(re_, "seq_0", envelope(1, b"t", b"x", seq=0))
write(re_, "truncated_header", envelope(1, b"t", b"x")[:15])
write(re_, "topic_length_past_end", envelope(2, b"t", b"", topic_len=300))
write(re_, "topic_not_utf8", envelope(2, b"\xff", b"x"))
write(re_, "text_payload_not_utf8", envelope(1, b"t", b"\xed\xa0\x80"))
write(re_, "chat_payload_truncated_code_point", envelope(3, b"t", "é".encode()[:1]))
write(re_, "binary_payload_not_utf8_is_fine", envelope(2, b"t", b"\xed\xa0\x80"))


# --- relay_scan: prefix + a stream of frames (fuzz/src/oracles/relay.rs) ----
# flags: 1 the server sends (unmasked), 2 permessage-deflate (RSV1), 4 a
# 300-byte message limit
rs = "relay_scan"
client_stream = (frame(0x1, b"hello ", fin=False, mask=MASK) + frame(0x9, b"p", mask=MASK)
                 + frame(0x0, b"world", mask=MASK) + frame(0x2, bytes(300), mask=MASK)
                 + frame(0x8, close_payload(1000, b"bye"), mask=MASK)
                 + frame(0x1, b"after the close", mask=MASK))
write(rs, "client_stream_whole", prefix() + client_stream)
write(rs, "client_stream_byte_by_byte", prefix(sizes=(0,)) + client_stream)
write(rs, "client_stream_in_odd_pieces", prefix(sizes=(2, 12, 0x81)) + client_stream)
write(rs, "server_stream", prefix(sizes=(6,), flags=1)
      + frame(0x1, b"hi") + frame(0x2, bytes(70000)) + frame(0x8, close_payload(1001)))
write(rs, "server_masked_fails", prefix(flags=1) + frame(0x1, b"x", mask=MASK))
write(rs, "client_unmasked_fails", prefix() + frame(0x1, b"x"))
write(rs, "compressed_with_deflate", prefix(flags=2) + frame(0x1, b"\xf2\x00", mask=MASK, rsv=4))
write(rs, "compressed_without_deflate", prefix() + frame(0x1, b"\xf2\x00", mask=MASK, rsv=4))
write(rs, "over_the_limit_across_fragments", prefix(sizes=(9,), flags=4)
      + frame(0x2, bytes(200), fin=False, mask=MASK) + frame(0x0, bytes(101), mask=MASK))
write(rs, "continuation_without_start", prefix() + frame(0x0, b"x", mask=MASK))
write(rs, "close_without_code", prefix(sizes=(1,)) + frame(0x8, b"", mask=MASK))
write(rs, "close_with_one_byte", prefix() + frame(0x8, b"x", mask=MASK))
