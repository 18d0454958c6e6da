/**
 * `bpfpilot query <verb> [target]` (and `bpfpilot -q <verb>`, bpftune's flag): asks the running
 * daemon over its control socket and prints tables for people or JSON for scripts.
 */
import { Command, InvalidArgumentError, Option } from "@commander-js/extra-typings";
import { ControlClientError, requestControl } from "../daemon/control/client.ts";
import { isVerb, takesNetns, VERB_NAMES, VERBS } from "../daemon/control/protocol.ts";
import { netnsSelectorError } from "../daemon/control/netns_scope.ts";
import type {
  DaemonInfo,
  StatusData,
  SummaryData,
  ToggleResult,
  TunableInfo,
  TunableStatus,
  TunableValue,
  TunerInfo,
  TunerTableData,
} from "../daemon/control/provider.ts";
import { DEFAULT_CONTROL_SOCKET } from "../daemon/control/socket_file.ts";
import { type HelpEntry, type PlannedRollback, rollbackCommand } from "../daemon/control/verbs.ts";
import { restoreGuard } from "../daemon/restorable.ts";
import { TUNERS } from "../tuners/registry.ts";

/** Exit statuses of `bpfpilot query`; the same in text and --json mode. */
export const QUERY_EXIT = {
  ok: 0,
  /** The daemon answered with an error (unknown tuner, busy, internal failure). */
  failed: 1,
  /** Unknown verb, missing or extra argument, bad option. */
  usage: 2,
  /** No daemon listening on the socket. */
  notRunning: 3,
  /** Not allowed to use the socket. */
  permission: 4,
  /** The daemon did not answer (timeout) or answered nonsense. */
  noAnswer: 5,
} as const;

export interface QueryOptions {
  json?: boolean;
  socket?: string;
  timeoutMs?: number;
  /** `tunables`/`status`: which namespaces (changed, all, global, a name; absent: changed). */
  netns?: string;
  /** Output sinks, one call per block of lines (tests capture them). */
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** Keeps daemon-supplied strings from carrying terminal escape sequences to the screen. */
// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\x00-\x1f\x7f]/g;

function clean(text: string): string {
  return String(text).replace(
    CONTROL_CHARS,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** Aligned columns; the last column is not padded. */
export function formatTable(header: string[], rows: string[][]): string {
  const all = [header, ...rows.map((row) => row.map(clean))];
  const widths = header.map((_, col) => Math.max(...all.map((row) => (row[col] ?? "").length)));
  return all
    .map((row) =>
      row.map((cell, col) => col === row.length - 1 ? cell : cell.padEnd(widths[col])).join("  ")
        .trimEnd()
    )
    .join("\n");
}

function values(list: TunableValue[]): string {
  return list.join(" ");
}

function netnsColumn<T extends { netns?: string }>(rows: T[]): boolean {
  return rows.some((row) => row.netns !== undefined);
}

function renderHelp(entries: HelpEntry[]): string {
  return "Queries the bpfpilot daemon answers (bpfpilot query <verb> [target]):\n" +
    formatTable(
      ["VERB", "ARGUMENT", "DESCRIPTION"],
      entries.map((e) => [e.verb, e.arg ?? "", e.description]),
    );
}

function renderTuners(tuners: TunerInfo[]): string {
  if (tuners.length === 0) return "no tuners loaded";
  return formatTable(["TUNER", "STATE", "REASON"], tuners.map((t) => [t.name, t.state, t.reason]));
}

function control(t: TunableInfo): string {
  const policy = t.policy ? `; ${clean(t.policy)}` : "";
  if (t.overridden) return `overridden (admin)${policy}`;
  const pin = t.pinnedBy ? `pinned by ${clean(t.pinnedBy)}` : "";
  if (pin) return (t.managed ? `managed above the value ${pin}` : pin) + policy;
  return (t.managed ? "managed" : "not managed") + policy;
}

function renderTunables(tunables: TunableInfo[]): string {
  if (tunables.length === 0) return "no tunables";
  const ns = netnsColumn(tunables);
  return formatTable(
    ["TUNER", "TUNABLE", ...(ns ? ["NETNS"] : []), "CONTROL", "VALUES"],
    tunables.map((t) => [
      t.tuner,
      t.name,
      ...(ns ? [t.netns ?? "global"] : []),
      control(t),
      values(t.values),
    ]),
  );
}

/** 3725 -> "1h 2m 5s". */
export function formatUptime(seconds: number): string {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60, s = Math.floor(seconds) % 60;
  const parts = [d && `${d}d`, (d || h) && `${h}h`, (d || h || m) && `${m}m`, `${s}s`];
  return parts.filter(Boolean).join(" ");
}

function renderDaemon(d: DaemonInfo): string {
  return [
    `bpfpilot ${clean(d.version)}: pid ${d.pid}, up ${formatUptime(d.uptimeSeconds)} ` +
    `(since ${clean(d.startedAt)})${d.advise ? ", advise mode" : ""}`,
    `state dir ${clean(d.stateDir)}${d.pidFile ? `, pid file ${clean(d.pidFile)}` : ""}`,
  ].join("\n");
}

function renderStatus(data: StatusData | TunableStatus[]): string {
  // A daemon from before `status` named itself answers with the bare table.
  const status = Array.isArray(data) ? data : data.tunables;
  const head = !Array.isArray(data) && data.daemon ? renderDaemon(data.daemon) + "\n\n" : "";
  return head + renderTunableStatus(status);
}

function renderTunableStatus(status: TunableStatus[]): string {
  if (status.length === 0) return "no tunables";
  const ns = netnsColumn(status);
  return formatTable(
    ["TUNER", "SYSCTL", ...(ns ? ["NETNS"] : []), "VALUES"],
    status.map((s) => [s.tuner, s.name, ...(ns ? [s.netns ?? "global"] : []), values(s.values)]),
  );
}

/** Tuner tables (tcp_conn's paths): one aligned table each, columns as the tuner lists them. */
function renderTables(tables: TunerTableData[], what: string): string {
  const shown = tables.filter((t) => t.rows.length > 0);
  if (shown.length === 0) return `no ${what} yet`;
  return shown.map((t) => {
    // A column no row fills (netns when every path is in the daemon's own namespace) is left out.
    const cols = t.columns.filter((c) => t.rows.some((r) => r[c] !== undefined));
    return formatTable(
      cols.map((c) => c.toUpperCase()),
      t.rows.map((r) => cols.map((c) => r[c] === undefined ? "global" : String(r[c]))),
    );
  }).join("\n\n");
}

function where(netns: string | undefined): string {
  return netns === undefined ? "" : ` in netns ${clean(netns)}`;
}

function renderSummary(summary: SummaryData): string {
  const lines = [`# Summary of changes made since ${clean(summary.since)}:`];
  if (summary.changes.length === 0 && summary.scenarios.length === 0 && !summary.gone) {
    lines.push("# no changes made and no scenarios seen yet");
  }
  for (const c of summary.changes) {
    lines.push(
      `# ${clean(c.tuner)}: sysctl '${clean(c.sysctl)}'${where(c.netns)} changed from ` +
        `(${clean(values(c.initial))}) -> (${clean(values(c.current))}) in ${c.changes} ` +
        `change${c.changes === 1 ? "" : "s"}`,
    );
  }
  for (const s of summary.scenarios) {
    lines.push(
      `# ${clean(s.tuner)}: scenario '${clean(s.scenario)}' occurred ${s.count} ` +
        `time${s.count === 1 ? "" : "s"} for tunable '${clean(s.tunable)}'${where(s.netns)}. ` +
        clean(s.description),
    );
  }
  const gone = summary.gone;
  if (gone) {
    lines.push(
      `# in ${gone.namespaces} network namespace${gone.namespaces === 1 ? "" : "s"} that ` +
        `are gone since:`,
    );
    for (const c of gone.changes) {
      lines.push(
        `# ${clean(c.tuner)}: sysctl '${clean(c.sysctl)}' changed ${c.changes} ` +
          `time${c.changes === 1 ? "" : "s"} in ${c.namespaces} of them`,
      );
    }
    for (const s of gone.scenarios) {
      lines.push(
        `# ${clean(s.tuner)}: scenario '${clean(s.scenario)}' occurred ${s.count} ` +
          `time${s.count === 1 ? "" : "s"} for tunable '${clean(s.tunable)}'. ` +
          clean(s.description),
      );
    }
  }
  return lines.join("\n");
}

/**
 * The command is rebuilt here from the sysctl's name and values, never copied from the answer:
 * whatever answers on the socket must not get a line of its choosing under "run these as root".
 * Only a sysctl a tuner manages, with values in its domain, gets one.
 */
function localRollbackCommand(entry: PlannedRollback): string {
  const numbers = entry.original.map((v) => (/^-?\d+$/.test(String(v)) ? Number(v) : NaN));
  const refused = restoreGuard(TUNERS)(String(entry.sysctl), numbers);
  if (refused !== null) return `# not restored: ${clean(refused)}`;
  try {
    return rollbackCommand({ ...entry, original: numbers });
  } catch {
    return "# not restored: the answer names no valid sysctl";
  }
}

function renderRollback(plan: PlannedRollback[]): string {
  if (plan.length === 0) return "# nothing to roll back: bpfpilot has not changed any sysctl";
  const lines = [
    "# Rollback plan: run these as root to restore the original values.",
    "# (This query changed nothing; stop or disable bpfpilot first or it may tune again.)",
  ];
  for (const entry of plan) {
    lines.push(
      `# ${clean(entry.tuner)}: '${clean(entry.sysctl)}'${where(entry.netns)} is now ` +
        `(${clean(values(entry.current))}), was (${clean(values(entry.original))})`,
      localRollbackCommand(entry),
    );
  }
  return lines.join("\n");
}

/** Human rendering of a successful answer. */
export function renderAnswer(verb: string, data: unknown): string {
  switch (verb) {
    case "help":
      return renderHelp(data as HelpEntry[]);
    case "tuners":
      return renderTuners(data as TunerInfo[]);
    case "tunables":
      return renderTunables(data as TunableInfo[]);
    case "status":
      return renderStatus(data as StatusData);
    case "summary":
      return renderSummary(data as SummaryData);
    case "rollback":
      return renderRollback(data as PlannedRollback[]);
    case "enable":
    case "disable":
      return clean((data as ToggleResult).message);
    case "metrics":
      return String(data).replace(/\n$/, "");
    case "paths":
      return renderTables(data as TunerTableData[], "paths (tcp_conn has seen no connection)");
    default: // jtunables, jstatus: JSON is their human form too
      return JSON.stringify(data, null, 2);
  }
}

// ---------------------------------------------------------------------------------------------
// Running

function exitForDaemonError(code: string): number {
  return code === "unknown-verb" || code === "bad-args" ? QUERY_EXIT.usage : QUERY_EXIT.failed;
}

function exitForClientError(error: ControlClientError): number {
  switch (error.kind) {
    case "not-running":
      return QUERY_EXIT.notRunning;
    case "permission-denied":
    case "untrusted":
      return QUERY_EXIT.permission;
    default:
      return QUERY_EXIT.noAnswer;
  }
}

/**
 * Runs one query and prints the result; returns the exit status (see QUERY_EXIT). Never throws
 * for anything a user can cause.
 */
export async function runQuery(
  verb: string,
  arg: string | undefined,
  opts: QueryOptions = {},
): Promise<number> {
  const out = opts.stdout ?? ((text: string) => console.log(text));
  const err = opts.stderr ?? ((text: string) => console.error(text));
  const fail = (code: string, message: string, status: number): number => {
    if (opts.json) out(JSON.stringify({ error: { code, message } }));
    err(`bpfpilot: ${message}`);
    return status;
  };

  if (!isVerb(verb)) {
    return fail(
      "usage",
      `unknown query '${clean(verb)}'; supported queries are: ${VERB_NAMES.join(", ")}`,
      QUERY_EXIT.usage,
    );
  }
  if (VERBS[verb].arg && arg === undefined) {
    return fail(
      "usage",
      `'${verb}' needs a tuner or sysctl name, e.g. bpfpilot query ${verb} tcp_buffer`,
      QUERY_EXIT.usage,
    );
  }
  if (!VERBS[verb].arg && arg !== undefined) {
    const hint = takesNetns(verb) ? `; to choose namespaces: --netns ${clean(arg)}` : "";
    return fail(
      "usage",
      `'${verb}' takes no argument (got '${clean(arg)}')${hint}`,
      QUERY_EXIT.usage,
    );
  }
  if (opts.netns !== undefined) {
    const why = takesNetns(verb)
      ? netnsSelectorError(opts.netns)
      : `only ${VERB_NAMES.filter(takesNetns).join(" and ")} take it`;
    if (why !== null) {
      return fail("usage", `--netns '${clean(opts.netns)}': ${why}`, QUERY_EXIT.usage);
    }
  }

  let response;
  try {
    response = await requestControl({ verb, target: arg, netns: opts.netns }, {
      socketPath: opts.socket ?? DEFAULT_CONTROL_SOCKET,
      timeoutMs: opts.timeoutMs,
    });
  } catch (error) {
    if (error instanceof ControlClientError) {
      return fail(error.kind, error.message, exitForClientError(error));
    }
    throw error;
  }
  if (!response.ok) {
    return fail(
      response.error.code,
      `the daemon refused '${verb}': ${clean(response.error.message)}`,
      exitForDaemonError(response.error.code),
    );
  }
  if (opts.json) {
    out(JSON.stringify(response.data, null, 2));
  } else {
    const note = opts.netns === undefined ? defaultScopeNote(verb, response.data) : "";
    out(renderAnswer(verb, response.data) + note);
  }
  return QUERY_EXIT.ok;
}

/**
 * Under a default `tunables`/`status` table that lists other namespaces, how to see the rest of
 * them (the daemon shows only what it changed there); not in JSON, whose shape stays the same.
 */
function defaultScopeNote(verb: string, data: unknown): string {
  if (verb !== "tunables" && verb !== "status") return "";
  const rows = verb === "status" && !Array.isArray(data) ? (data as StatusData).tunables : data;
  if (!Array.isArray(rows) || !rows.some((r) => r?.netns !== undefined)) return "";
  return "\n\nOther namespaces: only the sysctls bpfpilot changed, journalled or was overridden " +
    "in there; --netns all shows every tunable of each, --netns <name> one namespace.";
}

function parseTimeout(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
    throw new InvalidArgumentError("expected a number of seconds between 0 and 3600.");
  }
  return seconds;
}

function parseNetns(value: string): string {
  const why = netnsSelectorError(value);
  if (why !== null) throw new InvalidArgumentError(`${why}.`);
  return value;
}

const QUERY_HELP = `
Verbs:
${
  VERB_NAMES.map((v) =>
    `  ${(v + (VERBS[v].arg ? " <target>" : "")).padEnd(18)} ${VERBS[v].description}`
  )
    .join("\n")
}

Namespaces (--netns <which>, for tunables and status; jtunables and jstatus show the host's only):
  changed (default)   the host's every tunable; in other namespaces only the sysctls bpfpilot
                      changed, holds a journal entry of or the admin overrode (all of --netns's)
  all                 every tunable of every namespace bpfpilot knows (changed, saw events in)
  global              the host's namespace only
  <name>, ns:<inode>  every tunable of one namespace: its name ('ip netns' lists them, container
                      runtimes' too), or the key an answer shows for one without a name

Exit status (the same with --json):
  0  success
  1  the daemon answered with an error (unknown tuner or sysctl, busy, internal failure)
  2  usage error (unknown verb, missing or extra argument)
  3  the daemon is not running (no control socket, or a stale one)
  4  permission denied (needs root or the daemon's control group)
  5  no valid answer (timeout, or daemon and client versions differ)

With --json, stdout holds exactly one JSON document: the answer, or {"error":{"code","message"}}.
Examples: bpfpilot query tuners; bpfpilot query disable tcp_buffer; bpfpilot query rollback > undo.sh;
bpfpilot query tunables --netns all --json`;

/**
 * The `query` subcommand. `setExit` receives the exit status (the CLI's convention); by default
 * it becomes Deno.exitCode.
 */
export function queryCommand(
  setExit: (code: number) => void = (code) => {
    Deno.exitCode = code;
  },
) {
  return new Command("query")
    .usage("[options] <verb> [target]")
    .description(
      "ask the running bpfpilot daemon (bpftune's -q): state of tuners, tunables, " +
        "changes made, rollback plan, metrics; enable or disable a tuner or sysctl",
    )
    .argument("<verb>", `one of: ${VERB_NAMES.join(", ")}`)
    .argument("[target]", "tuner or sysctl name, for enable and disable")
    .option("--json", "print the answer as JSON")
    .addOption(
      new Option(
        "--netns <which>",
        "tunables, status: changed (default), all, global, or a namespace's name or ns:<inode>",
      ).argParser(parseNetns),
    )
    .option("--socket <path>", "control socket of the daemon", DEFAULT_CONTROL_SOCKET)
    .addOption(
      new Option("--timeout <seconds>", "give up if the daemon has not answered by then")
        .default(5)
        .argParser(parseTimeout),
    )
    .addHelpText("after", QUERY_HELP)
    // usage errors surface as CommanderError, which the CLI maps to exit status 2
    .exitOverride()
    .action(async (verb, target, opts) => {
      setExit(
        await runQuery(verb, target, {
          json: opts.json,
          socket: opts.socket,
          timeoutMs: opts.timeout * 1000,
          netns: opts.netns,
        }),
      );
    });
}
