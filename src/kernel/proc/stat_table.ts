/**
 * Parser for the per-CPU statistics tables in /proc/net/stat/ (arp_cache, ndisc_cache): a
 * header line of column names, then one line of hexadecimal values per CPU. Most columns are
 * per-CPU event counts (summed over CPUs); "entries" is the table's current size, repeated on
 * every line.
 */

export interface StatTable {
  columns: readonly string[];
  rows: readonly ReadonlyMap<string, number>[];
}

const HEX = /^[0-9a-fA-F]{1,16}$/;

export function parseStatTable(text: string): StatTable | null {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  if (lines.length === 0) return null;
  const columns = lines[0].split(/\s+/);
  if (!columns.every((c) => /^[a-z_][a-z0-9_]*$/i.test(c))) return null;
  const rows: Map<string, number>[] = [];
  for (const line of lines.slice(1)) {
    const tokens = line.split(/\s+/);
    if (!tokens.every((t) => HEX.test(t))) continue;
    const row = new Map<string, number>();
    const n = Math.min(columns.length, tokens.length);
    for (let i = 0; i < n; i++) row.set(columns[i], parseInt(tokens[i], 16));
    rows.push(row);
  }
  return { columns, rows };
}

/** Sum of a per-CPU counter column; undefined when the column does not exist. */
export function statTotal(table: StatTable, column: string): number | undefined {
  if (!table.columns.includes(column)) return undefined;
  let total = 0;
  for (const row of table.rows) total += row.get(column) ?? 0;
  return total;
}

/** A gauge column that every CPU line repeats (e.g. "entries"); the first line's value. */
export function statGauge(table: StatTable, column: string): number | undefined {
  return table.rows[0]?.get(column);
}
