/**
 * What a log record becomes in the journal: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, a MESSAGE_ID
 * for its kind (the record's `event` field) and every other field as BPFPILOT_<NAME>, taken from
 * the structured fields the code logged (never re-parsed from the message text).
 */
import type { JournalField } from "./journal_protocol.ts";
import { isValidFieldName } from "./journal_protocol.ts";
import { escapeControlsKeepingNewlines, jsonSafe } from "./safe_text.ts";

/**
 * One fixed 128-bit id per message kind (`journalctl MESSAGE_ID=<id>`); listed in README
 * "Logging to journald". Never change an id: operators' filters and alerts name them.
 */
export const MESSAGE_IDS = {
  /** "bpfpilot started (N tuners, support level ...)". */
  started: "cf1e380cbf96e0606700180fe67131f5",
  /** "bpfpilot stopped". */
  stopped: "db0e175376a71681fc1eb997ccd07661",
  /** SIGHUP re-read the configuration. */
  reloaded: "f0fdc8980f0ac4600dcd30fc19912a0b",
  /** A tuner loaded and attached its hooks. */
  tuner_active: "1f3c0addccf814d49b66ce51922a08c2",
  /** A tuner cannot run on this kernel (or failed to load). */
  tuner_unavailable: "237430c7023b3a329ae5fcc27c081369",
  /** "Scenario '...' occurred for tunable '...'": the first line of a change or proposal. */
  scenario: "ee48aac72592f58e8aee6fd68e948899",
  /** "Due to ... change X from (...) -> (...)": a sysctl was written. */
  changed: "93cba0e165e13c23ddcef1f0339622b9",
  /** Advise mode: the change that would have been made (and the sysctl -w line to make it). */
  advised: "168f9f49f1341449fef9a7c51847b194",
  /** Writing a sysctl failed. */
  change_failed: "bf4ae15629714cb62eedfd4ebbe4297c",
  /** A value at its ceiling will not grow further (logged once). */
  at_ceiling: "670d7da10187cf43c7d8f33a7be154a2",
  /** Someone else wrote a sysctl a tuner manages: bpfpilot stops tuning it there. */
  override_detected: "91acc449b90c08ec14bf71ad92f065dc",
  /** A proposal not made because an admin override (remembered or new) is in force. */
  override_in_force: "270e31f28af1f86bc5f3181462cb2979",
  /** A proposal refused by the operator's policy (a boot-time sysctl.d value, ...). */
  refused: "47f71e018bf99cd326bb2092ed398a3b",
  /** A changed value restored to its original (-R, or bpfpilot rollback). */
  rolled_back: "ed0e739ca2c3d47255975ddb25841f37",
  /** A value not restored: someone else's value stands, or restoring failed or was refused. */
  rollback_skipped: "d95d202498240815d6f97ecaf520fde5",
  /** A tuner's BPF events were lost (ring buffer full). */
  events_lost: "4b223fd0e297c21b0ae33f351a12b22d",
  /** The exit summary (counts, changes, the undo line). */
  summary: "0ecce04936a54ef9aebbc13c667f2fc7",
  /** The journal socket failed and records went to stderr meanwhile. */
  log_fallback: "596e63fb35494b27e87934d25e8c4d78",
} as const;

export type MessageKind = keyof typeof MESSAGE_IDS;

/** The field of a log record that names its kind (and so its MESSAGE_ID). */
export const EVENT_FIELD = "event";

/** BPFPILOT_<NAME> for a record field, or null when no valid name results. */
export function journalFieldName(key: string): string | null {
  const name = `BPFPILOT_${key.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}`;
  return isValidFieldName(name) ? name : null;
}

/** A field's text: sysctl values as `sysctl -n` prints them ("4096 131072 6291456"). */
function valueText(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") {
    return String(value);
  }
  if (
    Array.isArray(value) &&
    value.every((v) => typeof v === "number" || typeof v === "bigint" || typeof v === "string")
  ) {
    return value.join(" ");
  }
  if (value instanceof Error) return value.message;
  return jsonSafe(value);
}

export interface JournalRecord {
  priority: number;
  message: string;
  fields: Record<string, unknown>;
}

/** The journal fields of a record, in a stable order (fixed fields first). */
export function journalFields(r: JournalRecord): JournalField[] {
  const out: JournalField[] = [
    ["MESSAGE", escapeControlsKeepingNewlines(r.message)],
    ["PRIORITY", String(r.priority)],
    ["SYSLOG_IDENTIFIER", "bpfpilot"],
    ["SYSLOG_FACILITY", "3"], // daemon, as the syslog target logs
  ];
  for (const [key, value] of Object.entries(r.fields)) {
    if (key === EVENT_FIELD && typeof value === "string" && Object.hasOwn(MESSAGE_IDS, value)) {
      out.push(["MESSAGE_ID", MESSAGE_IDS[value as MessageKind]]);
      continue;
    }
    const name = journalFieldName(key);
    const text = valueText(value);
    if (name !== null && text !== null) out.push([name, escapeControlsKeepingNewlines(text)]);
  }
  return out;
}
