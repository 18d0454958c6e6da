#!/usr/bin/env python3
"""Many network namespaces at once, for the namespace-scale test and bench (one process, no fork
per namespace: creating and driving 1,000 through `ip netns exec` takes minutes on 2 cores).

  netns_crowd.py add PREFIX N            ip netns add PREFIX-0..N-1 (one `ip -batch`), lo up
  netns_crowd.py del PREFIX N            ip netns del of exactly those (one `ip -batch`)
  netns_crowd.py flows PREFIX N BYTES [RMEM|-] [STALL_MS]
      in each namespace in turn: set tcp_rmem to RMEM ("min default max") if given, then one
      loopback TCP connection carrying BYTES; prints {"flows": n, "failed": k, "ms": t,
      "senders": [[peak SO_SNDBUF, sends that waited near the max], ...one per flow]}.
      STALL_MS: the receiver stops reading for that long after every STALL_EVERY bytes, so the
      sender surely finds its buffer full at its max (a receiver that keeps up may never let it)
  netns_crowd.py loop PREFIX N BYTES SECONDS
      flows round-robin over the namespaces until SECONDS pass; prints the same line

Namespaces are entered with setns(2) by this process's only socket-making thread; it returns to
its own namespace after each.
"""
import ctypes
import fcntl
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def names(prefix, n):
    return [f"{prefix}-{i}" for i in range(n)]


def batch(lines):
    subprocess.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)


def enter(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def lo_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()


STALL_EVERY = 2 << 20


def flow(nbytes, stall_ms=0):
    """One loopback connection carrying nbytes, read to the end by a thread (that stops for
    stall_ms after every STALL_EVERY bytes)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = [0]

    def sink():
        c, _ = srv.accept()
        with c:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                if stall_ms and got[0] // STALL_EVERY != (got[0] + len(b)) // STALL_EVERY:
                    time.sleep(stall_ms / 1000)
                got[0] += len(b)

    t = threading.Thread(target=sink)
    t.start()
    cli = socket.create_connection(srv.getsockname())
    chunk = b"\x5a" * 65536
    sent = 0
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        near_max = int(f.read().split()[2]) * 3 // 4  # tcp_buffer's "near the max" at -r 4
    peak = 0
    blocked_at_max = 0
    with cli:
        while sent < nbytes:
            t0 = time.monotonic()
            sent += cli.send(chunk[: min(65536, nbytes - sent)])
            buf = cli.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            peak = max(peak, buf)
            # A send that waited (the buffer was full) while the buffer was near its max.
            if buf >= near_max and time.monotonic() - t0 > 0.002:
                blocked_at_max += 1
        cli.shutdown(socket.SHUT_WR)
        t.join(10)
    srv.close()
    return got[0] == nbytes, [peak, blocked_at_max]


def drive(prefix, n, nbytes, rmem=None, seconds=None, stall_ms=0):
    home = "/proc/self/ns/net"
    home_fd = os.open(home, os.O_RDONLY | os.O_CLOEXEC)
    start = time.monotonic()
    done = failed = 0
    senders = []
    try:
        i = 0
        while True:
            if seconds is None and i >= n:
                break
            if seconds is not None and time.monotonic() - start >= seconds:
                break
            name = f"{prefix}-{i % n}"
            i += 1
            try:
                enter(f"/run/netns/{name}")
                if rmem and i <= n:
                    with open("/proc/sys/net/ipv4/tcp_rmem", "w") as f:
                        f.write(rmem)
                ok, peak = flow(nbytes, stall_ms)
                if seconds is None:
                    senders.append(peak)
            except OSError:
                ok = False
                if seconds is None:
                    senders.append([0, 0])
            finally:
                if libc.setns(home_fd, CLONE_NEWNET) != 0:
                    sys.exit("cannot return to the own network namespace")
            done += 1
            failed += 0 if ok else 1
    finally:
        os.close(home_fd)
    out = {"flows": done, "failed": failed, "ms": round((time.monotonic() - start) * 1000)}
    if seconds is None:
        out["senders"] = senders
    print(json.dumps(out))


def main(argv):
    cmd, prefix, n = argv[1], argv[2], int(argv[3])
    if cmd == "add":
        batch([f"netns add {x}" for x in names(prefix, n)])
        home_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        for x in names(prefix, n):
            enter(f"/run/netns/{x}")
            lo_up()
        libc.setns(home_fd, CLONE_NEWNET)
    elif cmd == "del":
        present = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        mine = [x for x in names(prefix, n) if x in present]
        if mine:
            batch([f"netns del {x}" for x in mine])
    elif cmd == "flows":
        rmem = argv[5] if len(argv) > 5 and argv[5] != "-" else None
        drive(prefix, n, int(argv[4]), rmem, None, float(argv[6]) if len(argv) > 6 else 0)
    elif cmd == "loop":
        drive(prefix, n, int(argv[4]), None, float(argv[5]))
    else:
        sys.exit(f"unknown command {cmd}; see the docstring")


if __name__ == "__main__":
    main(sys.argv)
