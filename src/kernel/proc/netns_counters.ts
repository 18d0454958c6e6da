/**
 * A namespace's /proc/net counter files, read from inside it (the thread's own view through
 * /proc/thread-self/net). Each file is null where this kernel or namespace has none (IPv6
 * disabled: no snmp6); a namespace that is gone gives null for all.
 */
import { inNetns } from "../netns.ts";
import { type CounterTable, parseHeaderValuePairs, parseSnmp6 } from "./snmp.ts";
import { parseSockstat } from "./sockstat.ts";

export type NetFile = "snmp" | "snmp6" | "netstat" | "sockstat" | "sockstat6";

export interface NetnsCounters {
  snmp: CounterTable | null;
  /** /proc/net/netstat: TcpExt and IpExt. */
  netstat: CounterTable | null;
  snmp6: ReadonlyMap<string, number> | null;
  sockstat: CounterTable | null;
  sockstat6: CounterTable | null;
}

function readOptional(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/** Which counters of a file are wanted (the rest are not parsed); every one when absent. */
export interface CounterFilter {
  /** /proc/net/snmp and netstat: these protocols. */
  protos?: ReadonlySet<string>;
  /** /proc/net/snmp6: names that start with this. */
  snmp6Prefix?: string;
}

/** Reads only the files asked for (each read costs a /proc walk). */
export function readNetnsCounters(
  netns: string,
  files: readonly NetFile[],
  filter: CounterFilter = {},
): NetnsCounters {
  const out: NetnsCounters = {
    snmp: null,
    netstat: null,
    snmp6: null,
    sockstat: null,
    sockstat6: null,
  };
  try {
    inNetns(netns, () => {
      for (const f of files) {
        const text = readOptional(`/proc/thread-self/net/${f}`);
        if (text === null) continue;
        if (f === "snmp6") out.snmp6 = parseSnmp6(text, filter.snmp6Prefix);
        else if (f === "snmp" || f === "netstat") {
          out[f] = parseHeaderValuePairs(text, filter.protos);
        } else out[f] = parseSockstat(text);
      }
    });
  } catch {
    // the namespace is gone or cannot be entered: nothing to read
  }
  return out;
}
