/**
 * UDP traffic for the udp_buffer tests: rounds of a burst of datagrams into a fresh receiver
 * socket that reads nothing until the burst is over, so its receive queue overflows at
 * sk_rcvbuf; optionally the receiver sets SO_RCVBUF (locked). Loopback only, in the test's own
 * namespace, bounded in count. Python's socket module is used because it sets SO_RCVBUF and
 * sends synchronously (each datagram is queued or dropped before sendto returns).
 */
import { existsSync } from "node:fs";
import type { TestNetns } from "./daemon.ts";

export const PYTHON = "/usr/bin/python3";
export const HAVE_PYTHON = existsSync(PYTHON);

const FLOOD = `
import json, socket, sys, time
rounds, burst, size, lock, pause = (int(a) for a in sys.argv[1:6])
for r in range(rounds):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if lock:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, lock)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"u" * size
    for _ in range(burst):
        tx.sendto(payload, rx.getsockname())
    rx.setblocking(False)
    got = 0
    while True:
        try:
            rx.recv(65536)
            got += 1
        except BlockingIOError:
            break
    rcvbuf = rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    print(json.dumps({"round": r, "rcvbuf": rcvbuf, "received": got, "dropped": burst - got}), flush=True)
    rx.close()
    tx.close()
    time.sleep(pause / 1000)
`;

export interface FloodRound {
  round: number;
  /** SO_RCVBUF as the receiver saw it (sk_rcvbuf). */
  rcvbuf: number;
  received: number;
  dropped: number;
}

/** Runs `rounds` bursts inside `ns`; returns one record per round. */
export function udpFlood(
  ns: TestNetns,
  opts: { rounds: number; burst: number; size?: number; soRcvbuf?: number; pauseMs?: number },
): FloodRound[] {
  const args = [
    opts.rounds,
    opts.burst,
    opts.size ?? 1000,
    opts.soRcvbuf ?? 0,
    opts.pauseMs ?? 1000,
  ].map(String);
  const out = ns.exec([PYTHON, "-c", FLOOD, ...args], {
    timeoutMs: opts.rounds * ((opts.pauseMs ?? 1000) + 5000),
  });
  return out.trim().split("\n").filter((l) => l).map((l) => JSON.parse(l) as FloodRound);
}

const BLAST = `
import json, socket, sys, time
dst, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload, sent, end = b"b" * 64, 0, time.time() + seconds
while time.time() < end:
    for _ in range(500):
        try:
            s.sendto(payload, (dst, port))
            sent += 1
        except OSError:
            pass
print(json.dumps({"sent": sent}), flush=True)
`;

/**
 * Small UDP datagrams as fast as one CPU sends them, from `ns` to `dst` for `seconds`, pinned to
 * CPU `cpu` (so that the receiving side's RPS target is another CPU's backlog). Returns how many
 * were sent. Bounded in time; the receiver needs no socket (the port is unreachable).
 */
export function udpBlast(
  ns: TestNetns,
  opts: { dst: string; port?: number; seconds: number; cpu: number },
): number {
  const out = ns.exec([
    "taskset",
    "-c",
    String(opts.cpu),
    PYTHON,
    "-c",
    BLAST,
    opts.dst,
    String(opts.port ?? 9),
    String(opts.seconds),
  ], { timeoutMs: (opts.seconds + 10) * 1000 });
  return (JSON.parse(out.trim().split("\n").pop()!) as { sent: number }).sent;
}
