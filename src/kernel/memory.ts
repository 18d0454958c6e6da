/** Memory facts the TCP decisions need: page size and TCP's allocated pages. */
import { lib } from "../libbpf/runtime.ts";
import { parseSockstat } from "./proc/sockstat.ts";

const SC_PAGESIZE = 30;

export function pageSize(): number {
  try {
    const n = Number(lib().libc.sysconf(SC_PAGESIZE));
    return n > 0 ? n : 4096;
  } catch {
    return 4096;
  }
}

/** TCP's allocated memory in pages (/proc/net/sockstat "TCP: ... mem N"); null if absent. */
export function tcpAllocatedPages(): number | null {
  try {
    return parseSockstat(Deno.readTextFileSync("/proc/net/sockstat")).get("TCP")?.get("mem") ??
      null;
  } catch {
    return null;
  }
}

/** Linux "6.18.44-fc" -> {major: 6, minor: 18}. */
export function kernelVersion(release = Deno.osRelease()): { major: number; minor: number } {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : { major: 0, minor: 0 };
}
