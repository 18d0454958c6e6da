/**
 * Text a logged value can not abuse: control characters escaped (a process name must not forge
 * log lines or drive a terminal) and JSON that survives bigints, errors and cycles.
 */

// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x08\x0a-\x1f\x7f]/g;
// deno-lint-ignore no-control-regex
const CONTROLS_BUT_NEWLINE = /[\x00-\x08\x0b-\x1f\x7f]/g;
// deno-lint-ignore no-control-regex
export const HAS_CONTROL = /[\x00-\x1f\x7f]/;

const hex = (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;

/** \xNN for C0 controls (except tab) and DEL. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, hex);
}

/** As escapeControls, but newlines stay: for sinks that keep a multi-line value one record. */
export function escapeControlsKeepingNewlines(text: string): string {
  return text.replace(CONTROLS_BUT_NEWLINE, hex);
}

export function jsonSafe(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(value, (_key, v) => {
    if (typeof v === "bigint") return v.toString();
    if (v instanceof Error) return { name: v.name, message: v.message };
    if (typeof v === "object" && v !== null) {
      if (seen.has(v)) return "[circular]";
      seen.add(v);
    }
    return v;
  }) ?? "null";
}
