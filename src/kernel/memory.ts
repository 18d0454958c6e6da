/** Memory facts the tuners need: page size, TCP's allocated pages, physical memory. */
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

/** Physical memory in bytes (/proc/meminfo MemTotal); 0 when unreadable. */
export function memTotalBytes(text?: string): number {
  try {
    const m = /^MemTotal:\s+(\d+)\s+kB/m.exec(text ?? Deno.readTextFileSync("/proc/meminfo"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
