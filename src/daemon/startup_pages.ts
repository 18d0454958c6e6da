/**
 * Once the daemon runs, most of what it touched to get there is dead weight: the runtime's
 * module loader, parser and compilers, libbpf's object loading, the first compiles of our own
 * code. Those pages are clean file pages of the Deno executable and the shared libraries; the
 * kernel keeps them resident (mapped, so they stay near the top of its reclaim order) until memory
 * runs short. MADV_PAGEOUT hands them back now: a page mapped by this process alone leaves the
 * page cache (memory freed for the system, not only unmapped), one that another process also maps
 * (another Deno) stays. Pages the idle daemon still uses come back on the next touch, read from
 * disk once. Anonymous memory is never paged out (that would be swap); glibc's free heap pages
 * went back once the tuners were loaded (parse_memory.ts: that trim, before the pages touched
 * after start, keeps the peak down; a second one here returned 0.1 MB more).
 */
import type { Libc } from "../kernel/libc.ts";

/** madvise(2) advice: reclaim the pages now (Linux 5.4+; older kernels answer EINVAL). */
const MADV_PAGEOUT = 21;

export interface FileMapping {
  start: bigint;
  end: bigint;
  path: string;
}

/**
 * Private read-only mappings of regular files in a /proc/<pid>/maps text: executable code and
 * read-only data of the executable and its libraries. Writable, shared (the BPF ring buffers,
 * databases) and anonymous mappings are left alone.
 */
export function readOnlyFileMappings(maps: string): FileMapping[] {
  const out: FileMapping[] = [];
  for (const line of maps.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s+(\/.*)$/.exec(line);
    if (!m) continue;
    const [, start, end, perms, inode, path] = m;
    if (perms[0] !== "r" || perms[1] !== "-" || perms[3] !== "p" || inode === "0") continue;
    out.push({ start: BigInt(`0x${start}`), end: BigInt(`0x${end}`), path });
  }
  return out;
}

export interface PagedOut {
  /** Bytes of mappings advised (resident or not). */
  advisedBytes: number;
  mappings: number;
  /** The first refusal (errno) when the kernel refused any; the rest were still advised. */
  refused: number | null;
}

/** RssFile of a /proc/<pid>/status text, in kB (null when absent). */
export function residentFileKb(
  status: string = Deno.readTextFileSync("/proc/self/status"),
): number | null {
  const m = /^RssFile:\s+(\d+) kB/m.exec(status);
  return m ? Number(m[1]) : null;
}

/** Advises this process's read-only file mappings out. */
export function releaseStartupPages(
  libc: Pick<Libc, "madvise">,
  errno: () => number,
  maps: string = Deno.readTextFileSync("/proc/self/maps"),
): PagedOut {
  const result: PagedOut = { advisedBytes: 0, mappings: 0, refused: null };
  for (const m of readOnlyFileMappings(maps)) {
    if (libc.madvise(m.start, m.end - m.start, MADV_PAGEOUT) !== 0) {
      result.refused ??= errno();
      continue;
    }
    result.advisedBytes += Number(m.end - m.start);
    result.mappings++;
  }
  return result;
}
