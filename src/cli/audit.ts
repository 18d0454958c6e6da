/**
 * `bpfpilot audit`: advice only. Static checks of sysctls and kernel counters, plus (with a
 * window) the tuners running in advise mode; reports findings and changes nothing unless
 * --apply is given. Made for cron and systemd timers: stable IDs, the same exit code in every
 * output format, no terminal noise when stderr is not a TTY.
 */
import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import { type AdviseRunner, OBSERVED_TUNERS, unavailableRunner } from "../audit/advise.ts";
import type { ApplyHook } from "../audit/apply.ts";
import { type AuditSource, observeCheckId, performAudit } from "../audit/audit.ts";
import { STATIC_CHECKS } from "../audit/checks/registry.ts";
import { CONNECTION_FINDINGS } from "../audit/connection_findings.ts";
import { CONGESTION_SETTING } from "../tuners/tcp_conn_advice.ts";
import { readCounters } from "../audit/counters.ts";
import { AuditError } from "../audit/errors.ts";
import { type ErrStream, progressBar } from "../audit/progress.ts";
import { renderJson } from "../audit/render_json.ts";
import { renderOpenMetrics } from "../audit/render_openmetrics.ts";
import { renderText } from "../audit/render_text.ts";
import { EXIT_ERROR, EXIT_OK, REPORT_SCHEMA, REPORT_SCHEMA_VERSION } from "../audit/report.ts";
import { liveSysctls, readSysctlDumpFile } from "../audit/sysctl_source.ts";
import { checkTextfileWritable, writeTextfileAtomic } from "../audit/textfile.ts";
import { type Clock, realClock } from "../audit/window.ts";

export const DEFAULT_DURATION_SECONDS = 60;
export const MAX_DURATION_SECONDS = 86400;

export interface AuditOptions {
  /** Observation window in seconds; undefined means the default (60), 0 static checks only. */
  duration?: number;
  /** Audit a saved `sysctl -a` dump instead of this machine. */
  from?: string;
  json?: boolean;
  /** Also write an OpenMetrics textfile here (atomically). */
  prometheus?: string;
  /** Findings exit 0 instead of 1; errors still exit 2. */
  exitZero?: boolean;
  apply?: boolean;
  listChecks?: boolean;
  /** Text mode: print nothing when there is nothing to report (cron mails only findings). */
  quiet?: boolean;
}

export interface OutputStream {
  write(text: string): void;
}

export interface AuditDeps {
  /** Runs the tuners in advise mode during the window. */
  runner: AdviseRunner;
  /** Writes findings through the daemon's journal; absent until the daemon provides it. */
  apply?: ApplyHook;
  clock: Clock;
  wallNow(): Date;
  stdout: OutputStream;
  stderr: ErrStream;
  isRoot(): boolean;
  /** Root of procfs; tests point it at a fake tree. */
  procRoot: string;
  /** Aborts the window early (Ctrl-C). */
  signal?: AbortSignal;
}

function fdStream(file: { writeSync(p: Uint8Array): number }): OutputStream {
  const enc = new TextEncoder();
  return {
    write(text) {
      const bytes = enc.encode(text);
      try {
        let off = 0;
        while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
      } catch (e) {
        // A closed pipe (`| head`) is the reader's choice, not our error.
        if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
      }
    },
  };
}

export function defaultAuditDeps(): AuditDeps {
  const stderr = fdStream(Deno.stderr);
  return {
    runner: unavailableRunner,
    clock: realClock,
    wallNow: () => new Date(),
    stdout: fdStream(Deno.stdout),
    stderr: {
      write: stderr.write,
      isTTY: Deno.stderr.isTerminal(),
      columns: Deno.stderr.isTerminal() ? Deno.consoleSize().columns : undefined,
    },
    isRoot: () => Deno.uid() === 0,
    procRoot: "/proc",
  };
}

export function parseDuration(value: string): number {
  const s = Number(value.trim().replace(/s$/, ""));
  if (value.trim() === "" || !Number.isFinite(s) || s < 0 || s > MAX_DURATION_SECONDS) {
    throw new InvalidArgumentError(
      `expected seconds from 0 to ${MAX_DURATION_SECONDS}, e.g. --duration 60 (0 = static checks only).`,
    );
  }
  return s;
}

function usageChecks(o: AuditOptions, deps: AuditDeps): void {
  if (o.from !== undefined && o.duration !== undefined && o.duration > 0) {
    throw new AuditError(
      "--from audits a saved dump, which cannot be observed; drop --duration (or use --duration 0)",
    );
  }
  if (o.apply && o.from !== undefined) {
    throw new AuditError(
      "--apply cannot be combined with --from: a dump's findings belong to the machine it came " +
        "from; run `bpfpilot audit --apply` on that machine",
    );
  }
  if (o.apply && deps.apply === undefined) {
    throw new AuditError(
      "--apply is not available in this build: it needs the bpfpilot daemon's journal so that " +
        "`bpfpilot rollback` can undo the changes; apply the printed `sysctl -w` lines by hand instead",
    );
  }
  if (o.apply && !deps.isRoot()) {
    throw new AuditError("--apply changes sysctls and needs root; run it with sudo");
  }
}

export function renderCheckList(): string {
  const statics = STATIC_CHECKS.map((c) =>
    `${c.id}  (${c.tunable}${
      c.offline ? "; also with --from" : ""
    })\n  ${c.title}\n  ${c.rationale}\n`
  );
  const paths = Object.values(CONNECTION_FINDINGS).map((k) =>
    `${k.id}  (${CONGESTION_SETTING}, per remote path; observed by tcp_conn; not with --from)\n` +
    `  ${k.title}\n  ${k.rationale} No sysctl sets it per path: --apply leaves it.\n`
  );
  const observed = OBSERVED_TUNERS.map((t) =>
    `${observeCheckId(t)}  (the ${t} tuner; not with --from)\n  Observation by the ${t} tuner\n` +
    `  Runs the ${t} tuner in advise mode for the window (--duration): pass when it observed ` +
    `(what it would change are findings of their own), skip when it could not run here (the ` +
    `reason says why), needs-root without root. Never a finding itself.\n`
  );
  return [...statics, ...paths, ...observed].join("\n");
}

/** Runs the audit with `deps`; returns the exit code (0 nothing to recommend, 1 findings, 2 error). */
export async function runAudit(options: AuditOptions, deps: AuditDeps): Promise<number> {
  try {
    if (options.listChecks) {
      deps.stdout.write(renderCheckList());
      return EXIT_OK;
    }
    usageChecks(options, deps);
    if (options.prometheus !== undefined) checkTextfileWritable(options.prometheus);

    const duration = options.from !== undefined ? 0 : options.duration ?? DEFAULT_DURATION_SECONDS;
    const sysctlRoot = `${deps.procRoot}/sys`;
    let source: AuditSource;
    const warnings: string[] = [];
    if (options.from !== undefined) {
      const dump = readSysctlDumpFile(options.from);
      for (const w of dump.skipped) warnings.push(w);
      source = { kind: "file", path: options.from, sysctls: dump.source };
    } else {
      const sysctls = liveSysctls(sysctlRoot);
      const text = (name: string) => {
        const got = sysctls.get(name);
        return got.kind === "value" && got.value !== "" ? got.value : "unknown";
      };
      source = {
        kind: "live",
        sysctls,
        readCounters: () => readCounters(deps.procRoot),
        host: text("kernel.hostname"),
        kernel: text("kernel.osrelease"),
      };
    }

    const progress = progressBar(deps.stderr, duration);
    let report;
    try {
      report = await performAudit({
        source,
        durationSeconds: duration,
        runner: deps.runner,
        apply: options.apply ? deps.apply! : null,
        exitZero: options.exitZero === true,
        isRoot: deps.isRoot(),
        clock: deps.clock,
        wallNow: deps.wallNow,
        signal: deps.signal ?? new AbortController().signal,
        onProgress: progress.update,
        warnings,
      });
    } finally {
      progress.finish();
    }

    if (options.prometheus !== undefined) {
      writeTextfileAtomic(options.prometheus, renderOpenMetrics(report));
    }
    const nothingToSay = report.findings.length === 0 && report.warnings.length === 0 &&
      report.exitCode === EXIT_OK;
    if (options.json) deps.stdout.write(renderJson(report));
    else if (!(options.quiet && nothingToSay)) deps.stdout.write(renderText(report));
    return report.exitCode;
  } catch (e) {
    const message = e instanceof AuditError
      ? e.message
      : `internal error: ${e instanceof Error ? e.message : String(e)}; please report it`;
    deps.stderr.write(`bpfpilot audit: ${message}\n`);
    if (options.json) {
      deps.stdout.write(
        JSON.stringify(
          {
            schema: REPORT_SCHEMA,
            schemaVersion: REPORT_SCHEMA_VERSION,
            error: { message },
            exitCode: EXIT_ERROR,
          },
          null,
          2,
        ) + "\n",
      );
    }
    return EXIT_ERROR;
  }
}

const AUDIT_HELP = `
What it does:
  Runs static checks of sysctls and kernel counters (/proc/net/snmp, netstat, softnet_stat,
  neighbour tables) and, during the observation window, the tuners in advise mode. Prints
  findings with a stable ID, severity, current and recommended value, evidence and the
  \`sysctl -w\` line. Changes nothing unless --apply is given. tcp_conn reports per remote
  path the congestion control its rules would choose (no sysctl sets that: --apply leaves it).

Examples:
  bpfpilot audit                          observe 60 s, then report
  bpfpilot audit --duration 0             static checks only, instant
  bpfpilot audit --json | jq '.findings[].id'
  sysctl -a > host.sysctl; bpfpilot audit --from host.sysctl    offline, no root needed
  bpfpilot audit --exit-zero --prometheus /var/lib/node_exporter/textfile/bpfpilot_audit.prom
  bpfpilot audit --list-checks            what each check ID means

Cron (/etc/cron.d; --quiet prints nothing on a clean run, so mail comes only with findings,
and there is no progress bar without a terminal):
  0 * * * *  root  bpfpilot audit --quiet --duration 300

Exit status (the same for text, --json and --prometheus):
  0  nothing to recommend (or --exit-zero; or --apply applied every finding)
  1  findings
  2  error: bad usage, unreadable --from file, unwritable --prometheus file, failed --apply
Checks that cannot run here report "skip" (kernel lacks the sysctl or counter) or "needs-root";
neither changes the exit status.`;

export interface AuditCommandOptions {
  /** Receives the exit code (the CLI's convention); defaults to setting Deno.exitCode. */
  setExit?: (code: number) => void;
  /** Dependencies for the run; defaults to the real machine. */
  deps?: () => AuditDeps;
}

/** The `audit` subcommand; usage errors surface as CommanderError (map them to exit 2). */
export function auditCommand(cmdOptions: AuditCommandOptions = {}) {
  const setExit = cmdOptions.setExit ?? ((code: number) => {
    Deno.exitCode = code;
  });
  const makeDeps = cmdOptions.deps ?? defaultAuditDeps;
  return new Command("audit")
    .description(
      "advice only: check sysctls and kernel counters, observe with the tuners in advise mode, " +
        "report findings; changes nothing unless --apply",
    )
    .option(
      "--duration <seconds>",
      `observation window (default ${DEFAULT_DURATION_SECONDS}; 0 = static checks only)`,
      parseDuration,
    )
    .option("--from <file>", "audit a saved `sysctl -a` dump offline (sysctl checks only, no root)")
    .option("--json", "print one JSON document (schema bpfpilot-audit, version 1)")
    .option("--prometheus <file>", "also write an OpenMetrics textfile for node_exporter (atomic)")
    .option("--exit-zero", "exit 0 even with findings (errors still exit 2)")
    .option(
      "--apply",
      "apply the recommendations through the daemon's journal (undo: bpfpilot rollback)",
    )
    .option("--quiet", "print nothing when there is nothing to recommend (for cron mail)")
    .option("--list-checks", "describe every check ID and exit")
    .addHelpText("after", AUDIT_HELP)
    .exitOverride()
    .action(async (opts) => {
      const deps = makeDeps();
      const abort = new AbortController();
      const onInterrupt = () => abort.abort();
      Deno.addSignalListener("SIGINT", onInterrupt);
      try {
        setExit(await runAudit(opts, { ...deps, signal: deps.signal ?? abort.signal }));
      } finally {
        Deno.removeSignalListener("SIGINT", onInterrupt);
      }
    });
}
