/**
 * Parser for /proc/net/softnet_stat: one line per online CPU, hexadecimal columns. Column order
 * (net/core/net-procfs.c): processed, dropped, time_squeeze, five unused, cpu_collision,
 * received_rps, flow_limit_count, backlog_len, cpu index (>= 5.10), input_qlen, process_qlen.
 * Old kernels print fewer columns; a missing column reads as undefined, not as zero.
 */

export interface SoftnetRow {
  /** CPU number: the index column when present, else the line's position (offline CPUs are skipped by the kernel, so positions can be wrong on old kernels). */
  cpu: number;
  processed: number;
  dropped: number | undefined;
  timeSqueeze: number | undefined;
  flowLimitCount: number | undefined;
}

const HEX = /^[0-9a-fA-F]{1,16}$/;

export function parseSoftnetStat(text: string): SoftnetRow[] {
  const rows: SoftnetRow[] = [];
  let position = 0;
  for (const line of text.split("\n")) {
    const tokens = line.trim().split(/\s+/).filter((t) => t !== "");
    if (tokens.length === 0) continue;
    if (!tokens.every((t) => HEX.test(t))) continue; // corrupt line: skip it, keep the others
    const col = (i: number) => (i < tokens.length ? parseInt(tokens[i], 16) : undefined);
    rows.push({
      cpu: col(12) ?? position,
      processed: col(0)!,
      dropped: col(1),
      timeSqueeze: col(2),
      flowLimitCount: col(10),
    });
    position++;
  }
  return rows;
}

/** Sum of one column over all CPUs; undefined when no CPU line has that column. */
export function softnetTotal(
  rows: readonly SoftnetRow[],
  field: "processed" | "dropped" | "timeSqueeze" | "flowLimitCount",
): number | undefined {
  let total: number | undefined;
  for (const row of rows) {
    const v = row[field];
    if (v !== undefined) total = (total ?? 0) + v;
  }
  return total;
}

/** This host's /proc/net/softnet_stat, parsed; null when it cannot be read. */
export function readSoftnetStat(path = "/proc/net/softnet_stat"): SoftnetRow[] | null {
  try {
    return parseSoftnetStat(Deno.readTextFileSync(path));
  } catch {
    return null;
  }
}
