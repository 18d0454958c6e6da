/**
 * Parsers for the counter files of /proc/net:
 * - /proc/net/snmp and /proc/net/netstat hold pairs of lines, "Proto: Name1 Name2 ..." followed
 *   by "Proto: 1 2 ...". Kernels add and remove columns between versions, so a value line may be
 *   shorter or longer than its header: we keep the columns both lines have and drop the rest.
 * - /proc/net/snmp6 holds one "Name value" pair per line.
 */

/** Counters by protocol ("Tcp", "TcpExt", "Udp", ...) then by field name. */
export type CounterTable = ReadonlyMap<string, ReadonlyMap<string, number>>;

/** Parses an integer counter; null for anything that is not a plain decimal integer. */
export function parseDecimal(token: string): number | null {
  if (!/^-?\d+$/.test(token)) return null;
  const n = Number(token);
  return Number.isSafeInteger(n) ? n : null;
}

function splitProtoLine(line: string): { proto: string; tokens: string[] } | null {
  const colon = line.indexOf(":");
  if (colon <= 0) return null;
  const proto = line.slice(0, colon).trim();
  if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(proto)) return null;
  const rest = line.slice(colon + 1).trim();
  return { proto, tokens: rest === "" ? [] : rest.split(/\s+/) };
}

/**
 * Parses header/value line pairs (/proc/net/snmp, /proc/net/netstat). Malformed lines, headers
 * without a matching value line, and non-numeric values are skipped rather than fatal: one odd
 * line must not hide every other counter. `protos`: only those protocols' lines are parsed (a
 * poll that wants one protocol's counters skips the rest cheaply).
 */
export function parseHeaderValuePairs(text: string, protos?: ReadonlySet<string>): CounterTable {
  const table = new Map<string, Map<string, number>>();
  let lines = text.split("\n");
  if (protos) lines = lines.filter((l) => protos.has(l.slice(0, l.indexOf(":")).trim()));
  lines = lines.filter((l) => l.trim() !== "");
  for (let i = 0; i + 1 < lines.length; i++) {
    const header = splitProtoLine(lines[i]);
    const values = splitProtoLine(lines[i + 1]);
    if (header === null || values === null || header.proto !== values.proto) continue;
    // A header line is names; a value line is numbers. Refuse a "pair" of two value lines.
    if (header.tokens.some((t) => parseDecimal(t) !== null)) continue;
    if (values.tokens.some((t) => parseDecimal(t) === null)) continue;
    const fields = table.get(header.proto) ?? new Map<string, number>();
    const n = Math.min(header.tokens.length, values.tokens.length);
    for (let j = 0; j < n; j++) fields.set(header.tokens[j], parseDecimal(values.tokens[j])!);
    table.set(header.proto, fields);
    i++; // the value line is consumed
  }
  return table;
}

/**
 * Parses /proc/net/snmp6: "Ip6ReasmFails   12" per line; other lines are skipped, and with
 * `prefix` every line whose name does not start with it.
 */
export function parseSnmp6(text: string, prefix = ""): ReadonlyMap<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(prefix)) continue;
    const tokens = line.trim().split(/\s+/);
    if (tokens.length !== 2) continue;
    const value = parseDecimal(tokens[1]);
    if (value !== null && /^[A-Za-z][A-Za-z0-9_]*$/.test(tokens[0])) out.set(tokens[0], value);
  }
  return out;
}

/** Looks a counter up; undefined when this kernel does not have it. */
export function counter(
  table: CounterTable | null,
  proto: string,
  field: string,
): number | undefined {
  return table?.get(proto)?.get(field);
}
