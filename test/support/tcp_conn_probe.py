#!/usr/bin/env python3
"""TCP connections one at a time, each watched from its own socket (for the tcp_conn tests):

  tcp_conn_probe.py send HOST:PORT[,HOST:PORT...] N BYTES [GAP_MS]
      N connections round-robin over the targets: write BYTES, half-close, wait for the peer's
      close (as tcp_traffic.ts send does), then GAP_MS before the next. Prints one JSON line:
      {"connections": n, "failed": k, "ms": t, "conns": [per connection, below]}.

Per connection: the target, its congestion control right after connect() returned (the sockops
ESTABLISHED callback has run by then: the tuner's choice), at the end, and its own
tcpi_total_retrans and tcpi_segs_out at the end (the figures the tuner's loss check reads). Its
socket is polled while it runs (every write, at least every POLL_S): at the first poll that finds
another algorithm, `switch` holds segs_out at the poll before (a lower bound of the segments sent
when it was switched) and total_retrans at that poll (an upper bound of the retransmissions then).
"""
import json
import select
import socket
import struct
import sys
import time

TCP_INFO_LEN = 256
# struct tcp_info (linux/tcp.h): __u32 tcpi_total_retrans at 100, __u32 tcpi_segs_out at 136.
TOTAL_RETRANS_AT, SEGS_OUT_AT = 100, 136
POLL_S = 0.0005
CHUNK = 64 * 1024


def congestion(sock):
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
    return raw.split(b"\0", 1)[0].decode()


def figures(sock):
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    (retrans,) = struct.unpack_from("I", info, TOTAL_RETRANS_AT)
    (segs,) = struct.unpack_from("I", info, SEGS_OUT_AT)
    return retrans, segs


def send_one(target, payload):
    host, port = target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    try:
        initial = congestion(sock)
        out = {"to": host, "initial": initial}
        segs_before = 0

        def poll():
            nonlocal segs_before
            if "switch" in out:
                return
            # Figures read before an algorithm found unchanged were before the switch; after the
            # switch is found, read them again: both bounds hold whenever it happened.
            segs = figures(sock)[1]
            if congestion(sock) == initial:
                segs_before = segs
            else:
                out["switch"] = {"segsBefore": segs_before, "retransAfter": figures(sock)[0]}

        sock.setblocking(False)
        view, off, deadline = memoryview(payload), 0, time.monotonic() + 30
        while True:
            poll()
            if time.monotonic() > deadline:
                raise TimeoutError("connection did not finish in 30 s")
            if off < len(view):
                _, writable, _ = select.select([], [sock], [], POLL_S)
                if writable:
                    try:
                        off += sock.send(view[off : off + CHUNK])
                    except BlockingIOError:
                        pass
                    if off == len(view):
                        sock.shutdown(socket.SHUT_WR)
                continue
            readable, _, _ = select.select([sock], [], [], POLL_S)
            if readable:
                try:
                    if not sock.recv(1024):
                        break  # the sink read everything and closed
                except BlockingIOError:
                    pass
        poll()
        out["final"] = congestion(sock)
        out["retrans"], out["segsOut"] = figures(sock)
        return out
    finally:
        sock.close()


def send(targets, n, size, gap_ms):
    payload = bytes([0x5A]) * size
    start = time.monotonic()
    failed, conns = 0, []
    for i in range(n):
        try:
            conns.append(send_one(targets[i % len(targets)], payload))
        except OSError:
            failed += 1
        if gap_ms > 0 and i < n - 1:
            time.sleep(gap_ms / 1000)
    ms = round((time.monotonic() - start) * 1000)
    print(json.dumps({"connections": n, "failed": failed, "ms": ms, "conns": conns}))


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[1] != "send":
        print("usage: tcp_conn_probe.py send HOST:PORT[,...] N BYTES [GAP_MS]", file=sys.stderr)
        sys.exit(2)
    gap = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    send(sys.argv[2].split(","), int(sys.argv[3]), int(sys.argv[4]), gap)
