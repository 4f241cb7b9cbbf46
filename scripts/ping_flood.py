#!/usr/bin/env python3
"""A client that floods a WebSocket server with pings and never reads.

Usage: python3 scripts/ping_flood.py HOST:PORT SERVER_PID [PINGS]   (default 1,000,000)

Sends PINGS masked ping frames of 125 bytes as fast as the server takes them,
reads nothing, and prints the server's resident memory (VmRSS from /proc) before,
at its peak during the flood, and after; also how many pings the server took
before it stopped reading or closed the connection. Bounded: it stops after the
count, or 30 s, or when the server stops taking bytes for 10 s.
"""
import base64
import os
import socket
import sys
import threading
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def ping_frame(key):
    payload = bytes(range(125))
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x89, 0x80 | 125]) + key + masked


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    pid = int(sys.argv[2])
    pings = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    sock = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("server closed during the handshake")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    time.sleep(0.2)
    before = rss_kib(pid)
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], rss_kib(pid))
            except OSError:
                return
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    batch_pings = 10_000
    batch = ping_frame(b"\x12\x34\x56\x78") * batch_pings
    sock.settimeout(10)
    sent = 0
    outcome = "all sent"
    start = time.monotonic()
    try:
        while sent < pings and time.monotonic() - start < 30:
            sock.sendall(batch)
            sent += batch_pings
    except socket.timeout:
        outcome = "server stopped reading (send blocked for 10 s)"
    except OSError as err:
        outcome = f"server closed the connection ({err.strerror or err})"
    elapsed = time.monotonic() - start
    time.sleep(0.5)
    done.set()
    sampler.join()
    after = rss_kib(pid)
    print(f"pings sent: {sent:,} in {elapsed:.1f} s ({outcome})")
    print(f"server VmRSS: before {before:,} KiB, peak {peak[0]:,} KiB "
          f"(+{peak[0] - before:,} KiB), after {after:,} KiB")
    sock.close()


if __name__ == "__main__":
    main()
