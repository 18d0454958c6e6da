/**
 * One snapshot of the kernel counters the static checks read. Every source is optional: a kernel
 * without IPv6 has no /proc/net/snmp6, a container may hide /proc/net/stat; the checks that need
 * a missing source report "skip" with the reason recorded here.
 */
import { type CounterTable, parseHeaderValuePairs, parseSnmp6 } from "../kernel/proc/snmp.ts";
import { parseSoftnetStat, type SoftnetRow } from "../kernel/proc/softnet.ts";
import { parseStatTable, type StatTable } from "../kernel/proc/stat_table.ts";
import { parseSockstat } from "../kernel/proc/sockstat.ts";
import { freeBufferPages, parseZoneinfo } from "../kernel/proc/zoneinfo.ts";

export interface CounterSnapshot {
  /** /proc/net/snmp: Ip, Icmp, Tcp, Udp, ... */
  snmp: CounterTable | null;
  /** /proc/net/netstat: TcpExt, IpExt, ... */
  netstat: CounterTable | null;
  /** /proc/net/snmp6: Ip6ReasmFails, Udp6RcvbufErrors, ... */
  snmp6: ReadonlyMap<string, number> | null;
  softnet: readonly SoftnetRow[] | null;
  arpCache: StatTable | null;
  ndiscCache: StatTable | null;
  /** /proc/net/sockstat: current memory use in pages per protocol. */
  sockstat: CounterTable | null;
  memTotalBytes: number | null;
  /** nr_free_buffer_pages() from /proc/zoneinfo: the base of the pools' ceilings (tcp_mem, udp_mem). */
  freeBufferPages: number | null;
  pageSize: number;
  /** Why each absent source is absent, keyed by its /proc path. */
  missing: ReadonlyMap<string, string>;
}

function readText(path: string, missing: Map<string, string>): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    missing.set(
      path,
      code === "ENOENT"
        ? "not present on this kernel"
        : code === "EACCES" || code === "EPERM"
        ? "permission denied"
        : `unreadable (${code ?? "error"})`,
    );
    return null;
  }
}

function parseMemTotal(text: string | null): number | null {
  const m = text?.match(/^MemTotal:\s+(\d+)\s*kB/m);
  return m ? Number(m[1]) * 1024 : null;
}

function parseFreeBufferPages(text: string | null): number | null {
  const pages = text === null ? 0 : freeBufferPages(parseZoneinfo(text));
  return pages > 0 ? pages : null;
}

/** The kernel page size, from the first mapping in /proc/self/smaps (4096 when unreadable). */
function readPageSize(procRoot: string): number {
  try {
    const text = Deno.readTextFileSync(`${procRoot}/self/smaps`);
    const m = text.match(/^KernelPageSize:\s+(\d+)\s*kB/m);
    if (m) return Number(m[1]) * 1024;
  } catch {
    // fall through: a page size of 4 KiB is right for x86_64 and most arm64 kernels
  }
  return 4096;
}

export function readCounters(procRoot = "/proc"): CounterSnapshot {
  const missing = new Map<string, string>();
  const read = (rel: string) => readText(`${procRoot}/${rel}`, missing);
  const snmp = read("net/snmp");
  const netstat = read("net/netstat");
  const snmp6 = read("net/snmp6");
  const softnet = read("net/softnet_stat");
  const arp = read("net/stat/arp_cache");
  const ndisc = read("net/stat/ndisc_cache");
  const sockstat = read("net/sockstat");
  return {
    snmp: snmp === null ? null : parseHeaderValuePairs(snmp),
    netstat: netstat === null ? null : parseHeaderValuePairs(netstat),
    snmp6: snmp6 === null ? null : parseSnmp6(snmp6),
    softnet: softnet === null ? null : parseSoftnetStat(softnet),
    arpCache: arp === null ? null : parseStatTable(arp),
    ndiscCache: ndisc === null ? null : parseStatTable(ndisc),
    sockstat: sockstat === null ? null : parseSockstat(sockstat),
    memTotalBytes: parseMemTotal(readText(`${procRoot}/meminfo`, new Map())),
    freeBufferPages: parseFreeBufferPages(read("zoneinfo")),
    pageSize: readPageSize(procRoot),
    missing,
  };
}
