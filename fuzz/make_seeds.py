#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

Usage: python3 fuzz/make_seeds.py   (from any directory; Python 3 standard library only)

The seeds are small, meaningful inputs for libFuzzer to start from: valid frames
of each kind, fragmented and compressed messages (raw deflate, the 00 00 ff ff
tail stripped as RFC 7692 §7.2.1 says), masked frames for the server targets and
unmasked ones for the client target, valid and invalid HTTP heads. Each target's
input layout is described at the top of its fuzz_targets/<target>.rs; the header
bytes written here follow it. The output is deterministic (fixed masking keys),
so running the script again changes nothing unless the script changed. Files it
does not write are left alone.
"""

import pathlib
import struct
import zlib

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
MASK = b"\x37\xfa\x21\x3d"  # the key of RFC 6455 §5.7's examples


def frame(opcode, payload=b"", fin=True, rsv1=False, mask=None):
    """One frame; masked with `mask` (4 bytes) if given."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head = bytes([first, mask_bit | n])
    elif n < 65536:
        head = bytes([first, mask_bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return head + mask + payload
    return head + payload


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def deflater(window_bits=15, level=6):
    return zlib.compressobj(level, zlib.DEFLATED, -window_bits)


def deflate(data, compressor=None):
    """One message compressed as permessage-deflate sends it; pass the same
    `compressor` for several messages to keep the context (context takeover)."""
    compressor = compressor or deflater()
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


def client_frames(mask):
    """Frame builders for one side: masked (client to server) or not."""

    def f(opcode, payload=b"", fin=True, rsv1=False):
        return frame(opcode, payload, fin, rsv1, MASK if mask else None)

    return f


GREETING = b"Hello, WebSocket! " * 8
CLOSE_NORMAL = close_payload(1000, b"bye")


def decode_seeds():
    """decode: byte 0 = role (bit 0: 0 server, 1 client), allowed RSV (bits 1-3,
    0b100 is RSV1), max frame size index (bits 4-7, 15 the default); byte 1 = how
    the wire is cut; then the wire."""
    server, client = 0xF0, 0xF1
    server_rsv1, client_rsv1 = 0xF8, 0xF9
    m, u = client_frames(True), client_frames(False)
    seeds = {
        # The examples of RFC 6455 §5.7.
        "rfc-masked-hello": bytes([server, 0]) + bytes.fromhex("818537fa213d7f9f4d5158"),
        "rfc-unmasked-hello": bytes([client, 3]) + bytes.fromhex("810548656c6c6f"),
        "fragmented-text": bytes([server, 1]) + m(TEXT, b"Hel", fin=False) + m(CONT, b"lo"),
        "ping-pong-close": bytes([client, 7]) + u(PING, b"ping") + u(PONG, b"pong") + u(CLOSE, CLOSE_NORMAL),
        "binary-16bit-length": bytes([server, 255]) + m(BINARY, bytes(range(256)) * 2),
        # A 64-bit length header with only the start of its payload: a frame still arriving.
        "binary-64bit-length-partial": bytes([client, 9]) + frame(BINARY, bytes(70000))[:200],
        "compressed-text-rsv1": bytes([server_rsv1, 2]) + m(TEXT, deflate(GREETING), rsv1=True),
        "compressed-unmasked-rsv1": bytes([client_rsv1, 0]) + u(BINARY, deflate(bytes(4096)), rsv1=True),
        "many-frames": bytes([client, 5])
        + u(TEXT, b"a")
        + u(PING)
        + u(BINARY, b"\x00\xff")
        + u(TEXT, b"", fin=False)
        + u(CONT, b"b")
        + u(CLOSE),
        # Refused: an unmasked frame to a server, RSV1 not allowed, a fragmented
        # control frame, a frame over a 124-byte limit, a control frame over 125 bytes.
        "unmasked-to-server": bytes([server, 0]) + u(TEXT, b"Hello"),
        "rsv1-not-allowed": bytes([server, 0]) + m(TEXT, deflate(b"Hello"), rsv1=True),
        "fragmented-ping": bytes([client, 0]) + u(PING, b"p", fin=False),
        "over-frame-limit": bytes([0x40, 4]) + m(BINARY, bytes(125)),
        "long-control": bytes([client, 0]) + u(PING, bytes(126)),
        "reserved-opcode": bytes([server, 0]) + frame(0x3, b"x", mask=MASK),
    }
    for name, data in seeds.items():
        write("decode", name, data)


def session_seeds():
    """session: masked client frames after an upgrade offering permessage-deflate
    (context takeover on both sides, 15-bit windows)."""
    m = client_frames(True)
    end = m(CLOSE, CLOSE_NORMAL)
    takeover = deflater()
    two_messages = m(TEXT, deflate(GREETING, takeover), rsv1=True) + m(
        TEXT, deflate(GREETING + b"again", takeover), rsv1=True
    )
    compressed = deflate(GREETING * 4)
    third = len(compressed) // 3
    seeds = {
        "text-close": m(TEXT, b"Hello") + end,
        "fragmented-text": m(TEXT, b"frag", fin=False) + m(CONT, b"men", fin=False) + m(CONT, b"ted") + end,
        "ping-text-pong": m(PING, b"are you there") + m(TEXT, b"yes") + m(PONG, b"unsolicited") + end,
        "compressed-text": m(TEXT, deflate(GREETING), rsv1=True) + end,
        "compressed-context-takeover": two_messages + end,
        "compressed-fragmented": m(BINARY, compressed[:third], fin=False, rsv1=True)
        + m(CONT, compressed[third : 2 * third], fin=False)
        + m(PING, b"between fragments")
        + m(CONT, compressed[2 * third :])
        + end,
        "binary-plain-and-compressed": m(BINARY, bytes(range(200))) + m(BINARY, deflate(bytes(range(200))), rsv1=True) + end,
        # 100 KiB of zeros in about 100 bytes: within the 1 MiB message limit.
        "inflates-to-100k": m(BINARY, deflate(bytes(100 * 1024), deflater(level=9)), rsv1=True) + end,
        # 2 MiB of zeros: over the limit, close 1009 while inflating.
        "inflates-over-limit": m(BINARY, deflate(bytes(2 << 20), deflater(level=9)), rsv1=True) + end,
        "invalid-utf8": m(TEXT, b"caf\xc3") + m(CONT, b"\x28", fin=True),
        "compressed-invalid-utf8": m(TEXT, deflate(b"ok \xff\xfe not utf-8"), rsv1=True) + end,
        "close-1005-on-wire": m(CLOSE, close_payload(1005)),
        "close-with-reason": m(CLOSE, close_payload(4000, "d\u00e9j\u00e0 vu".encode())),
        "eof-without-close": m(TEXT, b"and then nothing"),
        "continuation-without-start": m(CONT, b"orphan") + end,
    }
    for name, data in seeds.items():
        write("session", name, data)


def handshake_seeds():
    """handshake: the bytes a client sends to the server handshake."""
    valid = (
        b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
    )
    seeds = {
        "rfc-request": valid + b"\r\n",
        "deflate-and-protocols": valid
        + b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, "
        b"permessage-deflate; server_max_window_bits=10; client_no_context_takeover\r\n\r\n",
        "frames-after-head": valid + b"\r\n" + frame(TEXT, b"early", mask=MASK),
        "keep-alive-upgrade-lowercase": b"GET / HTTP/1.1\r\nhost: a\r\nupgrade: WebSocket\r\n"
        b"connection: keep-alive, Upgrade\r\nsec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
        b"sec-websocket-version: 13\r\n\r\n",
        "missing-key": valid.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b"") + b"\r\n",
        "short-key": valid.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ=") + b"\r\n",
        "version-8": valid.replace(b"Version: 13", b"Version: 8") + b"\r\n",
        "post-method": valid.replace(b"GET", b"POST", 1) + b"\r\n",
        "http-1.0": valid.replace(b"HTTP/1.1", b"HTTP/1.0", 1) + b"\r\n",
        "no-upgrade-header": valid.replace(b"Upgrade: websocket\r\n", b"") + b"\r\n",
        "bad-extension-params": valid + b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99; x\r\n\r\n",
        "truncated-head": valid[:60],
        "header-too-large": valid + b"X-Padding: " + b"a" * 5000 + b"\r\n\r\n",
        "malformed": b"GET\x00/ HTTP/1.1\r\n\r\n",
    }
    for name, data in seeds.items():
        write("handshake", name, data)


def client_session_seeds():
    """client_session: byte 0 = the response (bits 0-3: an index into EXTENSIONS,
    15 the raw response), the client's deflate offer (bits 4-5: 0 default, 2 no
    client context takeover and a 12-bit client window, 3 disabled), what the
    client does (bits 6-7: 0 close first, 1 echo, 2 split, 3 send then read);
    byte 1 = pipe size index (bits 0-2, 0 is 64 KiB, 1 one byte), the client's
    fragment size (bits 3-4: none, 1, 16, 100), control messages yielded (bit 5),
    keepalive (bit 6); then the server's bytes, unmasked."""
    u = client_frames(False)
    end = u(CLOSE, CLOSE_NORMAL)
    close_first, echo, split, send_then_read = 0x00, 0x40, 0x80, 0xC0
    deflate_default, deflate_limited, deflate_off = 0x00, 0x20, 0x30
    raw = 0x0F
    takeover = deflater()
    head_101 = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: {accept}\r\n"
    )
    compressed = deflate(GREETING * 4)
    half = len(compressed) // 2
    seeds = {
        # Extension answer 0 (none) ...
        "plain-text-close": bytes([0 | close_first, 0]) + u(TEXT, b"Hello") + end,
        "plain-control-and-fragments": bytes([0 | split, 0b10_0000])
        + u(PING, b"ping")
        + u(PONG, b"pong")
        + u(TEXT, b"Hel", fin=False)
        + u(PING)
        + u(CONT, b"lo")
        + u(CLOSE, close_payload(1001, b"going away")),
        # ... 1 (permessage-deflate) ...
        "deflate-echo": bytes([1 | echo, 0])
        + u(TEXT, deflate(GREETING, takeover), rsv1=True)
        + u(BINARY, deflate(bytes(range(256)) * 4, takeover), rsv1=True)
        + end,
        "deflate-fragmented-small-pipe": bytes([1 | send_then_read, 0b10_0011])
        + u(TEXT, compressed[:half], fin=False, rsv1=True)
        + u(PING, b"between")
        + u(CONT, compressed[half:])
        + end,
        "deflate-masked-from-server": bytes([1 | close_first, 0]) + frame(TEXT, b"masked", mask=MASK),
        "deflate-over-limit": bytes([1 | echo, 0])
        + u(BINARY, deflate(bytes(2 << 20), deflater(level=9)), rsv1=True)
        + end,
        # ... 2 (server_no_context_takeover): a fresh compressor per message ...
        "no-context-takeover-split": bytes([2 | split, 0])
        + u(TEXT, deflate(GREETING), rsv1=True)
        + u(TEXT, deflate(GREETING), rsv1=True)
        + end,
        # ... 3 (client_max_window_bits=9): the echo compresses with a 9-bit window,
        # in 16-byte fragments through a 7-byte pipe ...
        "client-window-9-echo": bytes([3 | echo, 0b1_0011])
        + u(TEXT, deflate(GREETING * 3), rsv1=True)
        + end,
        # ... 4 (server_max_window_bits=10) ...
        "server-window-10": bytes([4 | send_then_read, 0])
        + u(BINARY, deflate(bytes(range(256)) * 8, deflater(window_bits=10)), rsv1=True)
        + end,
        # ... 6 (every parameter, 8-bit windows) with keepalive and no close ...
        "all-params-keepalive-eof": bytes([6 | echo, 0b100_0000]) + u(TEXT, deflate(b"short", deflater(window_bits=9)), rsv1=True),
        # ... 9 (server_max_window_bits=7, refused) and 7 against the 12-bit client offer (refused).
        "invalid-window-bits": bytes([9 | close_first, 0]) + end,
        "window-over-offer": bytes([7 | deflate_limited | echo, 0]) + end,
        "deflate-off-plain": bytes([0 | deflate_off | echo, 0b1000]) + u(TEXT, b"uncompressed") + end,
        # Raw responses: the input is the head ({accept} replaced) and the frames.
        "raw-101-deflate": bytes([raw | echo, 0])
        + head_101
        + b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n\r\n"
        + u(TEXT, deflate(GREETING), rsv1=True)
        + end,
        "raw-404-refusal": bytes([raw, 0])
        + b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found",
        "raw-wrong-accept": bytes([raw, 0]) + head_101.replace(b"{accept}", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") + b"\r\n",
        "raw-unoffered-protocol": bytes([raw, 0]) + head_101 + b"Sec-WebSocket-Protocol: chat\r\n\r\n" + end,
        "raw-head-split-in-pipe": bytes([raw | close_first, 0b10]) + head_101 + b"\r\n" + u(TEXT, b"after the head") + end,
        "raw-truncated-head": bytes([raw, 0]) + head_101[:40],
    }
    for name, data in seeds.items():
        write("client_session", name, data)


def main():
    decode_seeds()
    session_seeds()
    handshake_seeds()
    client_session_seeds()
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    files = sum(1 for p in CORPUS.rglob("*") if p.is_file())
    print(f"{files} seeds, {total} bytes, in {CORPUS}")


if __name__ == "__main__":
    main()
