/**
 * The address prefixes configured on a network device, from /proc (no netlink socket needed):
 * IPv6 addresses with their prefix lengths from /proc/net/if_inet6, IPv4 from the on-link routes
 * of /proc/net/route (every IPv4 address with a prefix shorter than /32 puts its subnet there).
 * Both files show the namespace of the reader: read them inside the device's namespace.
 */

export interface AddrPrefix {
  /** Address length in bits: 32 (IPv4) or 128 (IPv6). */
  addrLen: 32 | 128;
  prefixLen: number;
}

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

function hexInt(s: string | undefined): number | null {
  return s !== undefined && /^[0-9a-fA-F]{1,8}$/.test(s) ? parseInt(s, 16) : null;
}

function popcount32(v: number): number {
  let n = 0;
  for (let x = v >>> 0; x; x >>>= 1) n += x & 1;
  return n;
}

/** /proc/net/if_inet6: "addr ifindex prefixlen scope flags name", hexadecimal numbers. */
export function parseIfInet6(text: string, dev: string): AddrPrefix[] {
  const out: AddrPrefix[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[5] !== dev || !/^[0-9a-fA-F]{32}$/.test(f[0])) continue;
    const plen = hexInt(f[2]);
    if (plen !== null && plen <= 128) out.push({ addrLen: 128, prefixLen: plen });
  }
  return out;
}

/**
 * /proc/net/route: "Iface Destination Gateway Flags RefCnt Use Metric Mask ...": the subnets
 * reachable directly over `dev` (up, no gateway), as prefixes.
 */
export function parseRouteOnLink(text: string, dev: string): AddrPrefix[] {
  const out: AddrPrefix[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[0] !== dev) continue;
    const flags = hexInt(f[3]), mask = hexInt(f[7]);
    if (flags === null || mask === null) continue;
    if ((flags & RTF_UP) === 0 || (flags & RTF_GATEWAY) !== 0) continue;
    out.push({ addrLen: 32, prefixLen: popcount32(mask) });
  }
  return out;
}

/** The device's prefixes of one family as seen by this thread's namespace; [] if unreadable. */
export function readAddrPrefixes(dev: string, family: "ipv4" | "ipv6"): AddrPrefix[] {
  try {
    return family === "ipv6"
      ? parseIfInet6(Deno.readTextFileSync("/proc/net/if_inet6"), dev)
      : parseRouteOnLink(Deno.readTextFileSync("/proc/net/route"), dev);
  } catch {
    return [];
  }
}
