/**
 * A SYN flood for the SYN-backlog tests, without hping3: a raw socket (IPPROTO_RAW) inside the
 * test's namespace sends SYNs from a spoofed peer on a veth subnet to a listener that never
 * accepts. The listener's SYN-ACKs go to that peer, which nobody answers ARP for, so each request
 * stays half-open in the SYN queue (until its SYN-ACK retries run out, about a minute): this fills
 * the SYN queue, not the accept queue (no handshake completes). Per second it reports the
 * half-open requests of the listener (/proc/net/tcp state 03), the SYNs the listener dropped
 * (TcpExt ListenDrops) and the namespace's tcp_max_syn_backlog and tcp_syncookies. Bounded in
 * rate and time.
 */
import type { TestNetns } from "./daemon.ts";
import { PYTHON } from "./udp_flood.ts";

/** The listener's address (on the veth end `syn0`) and the spoofed peer behind the other end. */
export const SYN_LISTENER = "10.77.0.1", SYN_PEER = "10.77.0.2";

const FLOOD = `
import json, socket, struct, sys, time
dst, src = sys.argv[1], sys.argv[2]
port, seconds, rate = (int(a) for a in sys.argv[3:6])
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
def syn(sport):
    tcp = struct.pack("!HHIIBBHHH", sport, port, sport * 7919, 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp  # the kernel fills the IP checksum and id
def netstat():
    rows = [l.split() for l in open("/proc/net/netstat") if l.startswith("TcpExt:")]
    return dict(zip(rows[0][1:], (int(v) for v in rows[1][1:])))
def sysctl(name):
    return int(open("/proc/sys/net/ipv4/" + name).read())
def half_open():
    local = "%s:%04X" % ("".join("%02X" % b for b in reversed(socket.inet_aton(dst))), port)
    return sum(1 for l in open("/proc/net/tcp") if l.split()[1:4:2] == [local, "03"])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((dst, port))
ls.listen(1024)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sport = 1024
for sec in range(seconds):
    before = netstat()
    end = time.time() + 1
    sent = 0
    while time.time() < end:
        for _ in range(max(1, rate // 50)):
            raw.sendto(syn(sport), (dst, 0))
            sport = sport + 1 if sport < 65535 else 1024
            sent += 1
        time.sleep(0.02)
    after = netstat()
    print(json.dumps({
        "second": sec, "sent": sent, "halfOpen": half_open(),
        "drops": after["ListenDrops"] - before["ListenDrops"],
        "maxSynBacklog": sysctl("tcp_max_syn_backlog"), "syncookies": sysctl("tcp_syncookies"),
    }), flush=True)
`;

export interface SynSecond {
  second: number;
  sent: number;
  halfOpen: number;
  drops: number;
  maxSynBacklog: number;
  syncookies: number;
}

/** The veth pair the SYN-ACKs leave by: `syn0` holds SYN_LISTENER, `syn1` answers nothing. */
export function addSynPeerLink(ns: TestNetns): void {
  ns.exec(["ip", "link", "add", "syn0", "type", "veth", "peer", "name", "syn1"]);
  ns.exec(["ip", "addr", "add", `${SYN_LISTENER}/24`, "dev", "syn0"]);
  ns.exec(["ip", "link", "set", "syn0", "up"]);
  ns.exec(["ip", "link", "set", "syn1", "up"]);
}

/** Floods a listener on SYN_LISTENER:`port` for `seconds` at about `rate` SYNs a second. */
export function synFlood(
  ns: TestNetns,
  opts: { seconds: number; rate?: number; port?: number },
): SynSecond[] {
  const args = [SYN_LISTENER, SYN_PEER, opts.port ?? 8080, opts.seconds, opts.rate ?? 200];
  const out = ns.exec([PYTHON, "-c", FLOOD, ...args.map(String)], {
    timeoutMs: (opts.seconds + 20) * 1000,
  });
  return out.trim().split("\n").filter((l) => l).map((l) => JSON.parse(l) as SynSecond);
}
