/**
 * Turns a parsed request into answer data by asking the provider. Shaping that is the same for
 * every daemon (help table, rollback commands, bpftune-compatible JSON, metrics text) lives here
 * so the provider only reports facts.
 */
import { sysctlWLine } from "../../kernel/sysctl.ts";
import { renderMetrics } from "../metrics.ts";
import { ControlError, type ControlRequest, VERB_NAMES, VERBS } from "./protocol.ts";
import type { ControlProvider, RollbackEntry, StatusData, TunableValue } from "./provider.ts";

export interface HelpEntry {
  verb: string;
  /** Placeholder for the argument, or null when the verb takes none. */
  arg: string | null;
  description: string;
}

export interface PlannedRollback extends RollbackEntry {
  /** Shell command that restores `original`; printed, never run by the daemon. */
  command: string;
}

export function helpTable(): HelpEntry[] {
  return VERB_NAMES.map((verb) => ({
    verb,
    arg: VERBS[verb].arg ? "<tuner|sysctl>" : null,
    description: VERBS[verb].description,
  }));
}

const SHELL_SAFE = /^[A-Za-z0-9_.,:/=+-]+$/;

/** Quotes one shell word so a name can never be read as shell syntax. */
export function shellQuote(word: string): string {
  return SHELL_SAFE.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `sysctl -w` line (same form the daemon logs), prefixed with `ip netns exec` off the host ns. */
export function rollbackCommand(entry: RollbackEntry): string {
  const numbers = entry.original.filter((v): v is number => typeof v === "number");
  // Numbers go through the sysctl's own format (a CPU mask is written in hex).
  const sysctl = sysctlWLine(
    entry.sysctl,
    numbers.length === entry.original.length ? numbers : entry.original.join(" "),
  );
  return entry.netns === undefined ? sysctl : `ip netns exec ${shellQuote(entry.netns)} ${sysctl}`;
}

/** bpftune's `jtunables`: { tuner: { tunable: { type, num_values } } }. */
function bpftuneTunables(
  tunables: Awaited<ReturnType<ControlProvider["tunables"]>>,
): Record<string, Record<string, { type: string; num_values: number }>> {
  const out: Record<string, Record<string, { type: string; num_values: number }>> = {};
  for (const t of tunables) {
    if (t.netns !== undefined) continue; // bpftune lists each tunable once, global namespace
    (out[t.tuner] ??= {})[t.name] = { type: t.type, num_values: t.values.length };
  }
  return out;
}

/** bpftune's `jstatus`: { tuner: { sysctl: v | [v0, v1, v2] } }, global namespace only. */
function bpftuneStatus(
  status: Awaited<ReturnType<ControlProvider["status"]>>,
): Record<string, Record<string, TunableValue | TunableValue[]>> {
  const out: Record<string, Record<string, TunableValue | TunableValue[]>> = {};
  for (const s of status) {
    if (s.netns !== undefined) continue;
    (out[s.tuner] ??= {})[s.name] = s.values.length === 1 ? s.values[0] : s.values;
  }
  return out;
}

function requireTarget(request: ControlRequest): string {
  if (request.target === undefined) {
    throw new ControlError("bad-args", `verb '${request.verb}' needs a tuner or sysctl name`);
  }
  return request.target;
}

/** Answer data for a request; provider errors propagate to the caller unchanged. */
export async function runVerb(
  provider: ControlProvider,
  request: ControlRequest,
): Promise<unknown> {
  switch (request.verb) {
    case "help":
      return helpTable();
    case "tuners":
      return await provider.tuners();
    case "tunables":
      return await provider.tunables(request.netns);
    case "status": {
      const data: StatusData = {
        daemon: (await provider.daemon?.()) ?? null,
        tunables: await provider.status(request.netns),
      };
      return data;
    }
    case "summary":
      return await provider.summary();
    case "rollback": {
      const entries = await provider.rollback();
      return entries.map((e): PlannedRollback => ({ ...e, command: rollbackCommand(e) }));
    }
    case "enable":
      return await provider.enable(requireTarget(request));
    case "disable":
      return await provider.disable(requireTarget(request));
    case "metrics":
      return renderMetrics(await provider.metrics());
    case "paths":
      return (await provider.tables?.("paths")) ?? [];
    case "jtunables":
      // bpftune's forms list the host's namespace only: no other is read.
      return bpftuneTunables(await provider.tunables("global"));
    case "jstatus":
      return bpftuneStatus(await provider.status("global"));
  }
}
