/**
 * Fragmented UDP for the ip_frag tests: datagrams larger than the MTU (path-MTU discovery off, so
 * they leave as fragments) sent over loopback inside the test's namespace, whose loopback MTU the
 * test lowers to 1500. Per second it reports how many reassemblies failed and succeeded
 * (/proc/net/snmp of the namespace). Bounded in time and rate.
 */
import type { TestNetns } from "./daemon.ts";
import { PYTHON } from "./udp_flood.ts";

const SEND = `
import json, socket, sys, time
seconds, size, gap_ms = (int(a) for a in sys.argv[1:4])
def reasm():
    lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Ip:")]
    row = dict(zip(lines[0][1:], (int(v) for v in lines[1][1:])))
    return row["ReasmFails"], row["ReasmOKs"]
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
rx.setblocking(False)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
tx.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT: fragment, no DF
payload = b"f" * size
for sec in range(seconds):
    f0, o0 = reasm()
    end = time.time() + 1
    while time.time() < end:
        tx.sendto(payload, rx.getsockname())
        try:
            while True:
                rx.recv(65536)
        except BlockingIOError:
            pass
        time.sleep(gap_ms / 1000)
    f1, o1 = reasm()
    print(json.dumps({"second": sec, "fails": f1 - f0, "oks": o1 - o0}), flush=True)
`;

export interface FragSecond {
  second: number;
  fails: number;
  oks: number;
}

export function fragFlood(
  ns: TestNetns,
  opts: { seconds: number; size?: number; gapMs?: number },
): FragSecond[] {
  const args = [opts.seconds, opts.size ?? 20000, opts.gapMs ?? 50].map(String);
  const out = ns.exec([PYTHON, "-c", SEND, ...args], { timeoutMs: (opts.seconds + 20) * 1000 });
  return out.trim().split("\n").filter((l) => l).map((l) => JSON.parse(l) as FragSecond);
}
