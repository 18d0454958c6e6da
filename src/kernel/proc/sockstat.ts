/**
 * Parser for /proc/net/sockstat: "TCP: inuse 1 orphan 0 tw 3 alloc 1 mem 15", i.e. a protocol
 * then name/value pairs. "mem" is in pages, comparable with net.ipv4.tcp_mem and udp_mem.
 */
import { type CounterTable, parseDecimal } from "./snmp.ts";

export function parseSockstat(text: string): CounterTable {
  const table = new Map<string, Map<string, number>>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const proto = line.slice(0, colon).trim();
    const tokens = line.slice(colon + 1).trim().split(/\s+/);
    const fields = new Map<string, number>();
    for (let i = 0; i + 1 < tokens.length; i += 2) {
      const value = parseDecimal(tokens[i + 1]);
      if (value !== null) fields.set(tokens[i], value);
    }
    if (fields.size > 0) table.set(proto, fields);
  }
  return table;
}
