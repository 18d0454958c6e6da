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
