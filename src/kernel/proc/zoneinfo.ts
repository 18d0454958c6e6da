/**
 * /proc/zoneinfo and the kernel's nr_free_buffer_pages() derived from it (TCP's memory defaults
 * and bpftune's tcp_mem ceilings are fractions of it).
 */

/** One zone of /proc/zoneinfo, the fields the free-buffer estimate needs. */
export interface Zone {
  node: number;
  name: string;
  managed: number;
  high: number;
}

/** Zones at or below ZONE_NORMAL: the ones the kernel's nr_free_buffer_pages() counts. */
const BUFFER_ZONES = new Set(["DMA", "DMA32", "Normal"]);

/**
 * The kernel's nr_free_buffer_pages(): per zone up to Normal, managed pages above the high
 * watermark. tcp_mem's boot defaults derive from it. bpftune counts only "Normal" zones (or
 * "DMA32" when there are none), which ignores the up-to-4 GiB DMA32 zone on larger machines;
 * we count what the kernel counts.
 */
export function freeBufferPages(zones: readonly Zone[]): number {
  let pages = 0;
  for (const zone of zones) {
    if (BUFFER_ZONES.has(zone.name) && zone.managed > zone.high) pages += zone.managed - zone.high;
  }
  return pages;
}

export class ZoneinfoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ZoneinfoError";
  }
}

/**
 * Parses /proc/zoneinfo. Only the zone-level "high" and "managed" lines count; the per-CPU
 * "high:" lines under "pagesets" have a colon and are skipped.
 */
export function parseZoneinfo(text: string): Zone[] {
  const zones: Zone[] = [];
  let current: { node: number; name: string; managed?: number; high?: number } | undefined;
  const finish = () => {
    if (current?.managed !== undefined && current.high !== undefined) {
      zones.push({
        node: current.node,
        name: current.name,
        managed: current.managed,
        high: current.high,
      });
    }
  };
  for (const line of text.split("\n")) {
    const header = /^Node\s+(\d+),\s+zone\s+(\S+)\s*$/.exec(line);
    if (header) {
      finish();
      current = { node: Number(header[1]), name: header[2] };
      continue;
    }
    if (!current) continue;
    const field = /^\s+(managed|high)\s+(\d+)\s*$/.exec(line);
    if (field) current[field[1] as "managed" | "high"] = Number(field[2]);
  }
  finish();
  return zones;
}

/**
 * Reads the free-buffer page count from /proc/zoneinfo. Throws ZoneinfoError (cause and fix in
 * the message) when the file is unreadable or holds no usable zone; callers then leave tcp_mem
 * alone rather than guess a ceiling.
 */
export function readFreeBufferPages(path = "/proc/zoneinfo"): number {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new ZoneinfoError(
      `cannot read ${path} (${code ?? "unknown error"}) to size the tcp_mem ceiling: ` +
        `mount procfs at /proc (in a container, do not mask ${path}); tcp_mem will not be grown`,
    );
  }
  const pages = freeBufferPages(parseZoneinfo(text));
  if (pages <= 0) {
    throw new ZoneinfoError(
      `${path} lists no DMA, DMA32 or Normal zone with managed pages above the high watermark, ` +
        `so the tcp_mem ceiling cannot be computed: check that ${path} is the kernel's ` +
        `(not an emulated procfs); tcp_mem will not be grown`,
    );
  }
  return pages;
}

/** readFreeBufferPages, or 0 (the pool is then never grown) after telling `warn` why. */
export function freeBufferPagesOrZero(warn: (msg: string) => void, pool: string): number {
  try {
    return readFreeBufferPages();
  } catch (e) {
    warn(`${pool} growth disabled: ${(e as Error).message}`);
    return 0;
  }
}
