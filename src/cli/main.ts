/** The `bpfpilot` command line: subcommands and bpftune-compatible root flags. */
import { Command, CommanderError, Option } from "@commander-js/extra-typings";
import { ATTACH_KINDS, type AttachKind } from "../kernel/hooks.ts";
import { VERSION } from "../version.ts";
import { setProcessName } from "../kernel/process.ts";
import { describeError, EXIT, requireRoot } from "./errors.ts";
import { buildSupportReport, renderSupportText } from "./support.ts";
import {
  addRunOptions,
  controlSocketPath,
  RUN_HELP,
  runCommand,
  runDaemon,
  type RunFlags,
} from "./run.ts";
import { enableCommand, rollbackCommand } from "./state.ts";
import { daemonAuditCommand } from "./audit_daemon.ts";
import { queryCommand, runQuery } from "./query.ts";
import { readinessChannel } from "./readiness.ts";
import { configCommand } from "./config.ts";
import { selectConfig } from "../config/effective.ts";
import { TUNERS } from "../tuners/registry.ts";

function runSupport(opts: { json?: boolean; legacy?: boolean; prefer?: string }): number {
  requireRoot("bpfpilot support");
  const report = buildSupportReport({
    legacy: opts.legacy,
    prefer: (opts.prefer as AttachKind | undefined) ?? null,
  });
  console.log(opts.json ? JSON.stringify(report, null, 2) : renderSupportText(report));
  return report.level === "none" ? EXIT.failure : EXIT.ok;
}

function supportCommand(setExit: (code: number) => void) {
  return new Command("support")
    .description(
      "report what bpfpilot can do on this kernel: support level, per-netns " +
        "policy, and for every hook the attach kind chosen or why none works",
    )
    .option("--json", "print one JSON object instead of text")
    .option("-L, --legacy", "prefer each hook's fallback attach kinds")
    .addOption(
      new Option("--prefer <kind>", "try this attach kind first on every hook").choices(
        ATTACH_KINDS,
      ),
    )
    .addHelpText(
      "after",
      `
Exit status: 0 supported (fully or in legacy mode), 1 not supported or an error.
Needs root. Example: bpfpilot support --json | jq .level`,
    )
    .action((opts) => setExit(runSupport(opts)));
}

/**
 * The socket a query asks: the one its flags name (as the daemon's would), else the one the
 * daemon's configuration file names (--config, else the default file; unreadable: ignored),
 * else null for the default.
 */
export function querySocket(flags: Pick<RunFlags, "controlSocket" | "stateDir" | "config">) {
  if (flags.controlSocket !== undefined || flags.stateDir !== undefined) {
    return controlSocketPath(flags);
  }
  let file: Record<string, unknown> = {};
  try {
    file = selectConfig({ config: flags.config }, TUNERS)?.settings ?? {};
  } catch {
    // a query must still reach the default socket when the file is broken or unsafe
  }
  const { controlSocket, stateDir } = file as Pick<RunFlags, "controlSocket" | "stateDir">;
  if (controlSocket === undefined && stateDir === undefined) return null;
  return controlSocketPath({ controlSocket, stateDir });
}

/**
 * `query` also takes the daemon's own --control-socket, --state-dir and --config (and the root's,
 * as in `bpfpilot --control-socket X query tuners`), so the flags that started a daemon find it;
 * with none, the default configuration file may name the daemon's socket.
 */
function withControlSocketOption(query: ReturnType<typeof queryCommand>, root: () => RunFlags) {
  const cmd = query as unknown as Command;
  cmd.option("--control-socket <path>", "same as --socket (the daemon's flag)");
  cmd.option(
    "--state-dir <dir>",
    "the daemon's --state-dir: ask the daemon that uses it (its socket is <dir>/control.sock)",
  );
  cmd.option("--config <file>", "the daemon's --config: ask the daemon it configures");
  cmd.hook("preAction", () => {
    const own = cmd.opts() as { controlSocket?: string; stateDir?: string; config?: string };
    const r = root();
    const chosen = querySocket({
      config: own.config ?? r.config,
      controlSocket: own.controlSocket ??
        (typeof r.controlSocket === "string" ? r.controlSocket : undefined),
      stateDir: own.stateDir ?? r.stateDir,
    });
    if (chosen !== null && cmd.getOptionValueSource("socket") === "default") {
      cmd.setOptionValue("socket", chosen);
    }
  });
  return cmd;
}

/** -P: bpftune prints its plugin directory; bpfpilot's tuners are built in, so it lists them. */
function printTuners(): number {
  console.error("bpfpilot: no plugin directory: the tuners are built in; they are:");
  for (const t of TUNERS) console.log(t.name);
  return EXIT.ok;
}

export function buildProgram(setExit: (code: number) => void) {
  const program = addRunOptions(
    new Command()
      .name("bpfpilot")
      .description(
        "BPF-driven auto-tuner for Linux kernel tunables: watches the kernel with BPF, raises a " +
          "limit when it gets in the way, logs what it changed and why, backs off when the admin " +
          "takes over, and can undo everything. With no command, runs the daemon (bpftune's " +
          "flags work: bpfpilot -dsR).",
      )
      .version(VERSION, "-V, --version", "print the version and exit")
      .helpOption("-h, --help", "show help"),
  )
    .option("-S, --support", "same as the 'support' command")
    .option(
      "-P, --print-libdir",
      "bpftune's plugin directory: bpfpilot has none, so print its built-in tuners and exit",
    )
    .option("-q, --query <verb>", "ask the running daemon (same as 'query <verb>')")
    .enablePositionalOptions()
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });
  program.action(async () => {
    const o = program.opts() as RunFlags & {
      support?: boolean;
      query?: string;
      printLibdir?: boolean;
    };
    if (o.printLibdir) return setExit(printTuners());
    if (o.support) return setExit(runSupport({ legacy: o.legacy, prefer: o.prefer }));
    if (o.query) {
      const [verb, arg] = o.query.split(/\s+/, 2);
      return setExit(await runQuery(verb, arg, { socket: querySocket(o) ?? undefined }));
    }
    setExit(await runDaemon(o, (a) => program.getOptionValueSource(a)));
  });
  for (
    const c of [
      runCommand(setExit),
      supportCommand(setExit),
      rollbackCommand(setExit),
      enableCommand(setExit),
      daemonAuditCommand(setExit),
      configCommand(setExit),
      withControlSocketOption(queryCommand(setExit), () => program.opts() as RunFlags),
    ]
  ) {
    program.addCommand(c as unknown as Command);
  }
  // addCommand() does not pass exitOverride on: without it a subcommand's usage error would
  // exit 1 from inside commander instead of reaching main() as a CommanderError (exit 2).
  forEachCommand(program as unknown as Command, (c) => {
    c.exitOverride();
    c.configureOutput(program.configureOutput());
  });
  program.addHelpText(
    "after",
    `${RUN_HELP}

Environment: BPFPILOT_LIBBPF=<file> uses that libbpf; BPFPILOT_LIBBPF_DIR=<dir> searches only
that directory for libbpf.so.1.`,
  );
  return program;
}

function forEachCommand(c: Command, f: (c: Command) => void): void {
  f(c);
  for (const sub of c.commands) forEachCommand(sub as Command, f);
}

export async function main(args: string[]): Promise<number> {
  setProcessName("bpfpilot");
  let code: number = EXIT.ok;
  const debug = args.includes("--debug") ||
    args.some((a) => /^-[a-zA-Z]*d[a-zA-Z]*$/.test(a) && !a.startsWith("--"));
  const program = buildProgram((c) => code = c);
  const first = args[0];
  if (first === "help") {
    // `bpfpilot help [command]`, as git and systemctl users type it.
    const sub = program.commands.find((c) => c.name() === args[1]);
    if (args[1] !== undefined && !sub) {
      console.error(`bpfpilot: no command '${args[1]}' (run 'bpfpilot help' for the commands)`);
      return EXIT.usage;
    }
    (sub ?? program).outputHelp();
    return EXIT.ok;
  }
  if (first !== undefined && !first.startsWith("-")) {
    const known = program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
    if (!known.includes(first)) {
      console.error(
        `bpfpilot: unknown command '${first}'; commands: ${known.join(", ")} ` +
          `(run with --help for usage)`,
      );
      return EXIT.usage;
    }
  }
  try {
    await program.parseAsync(args, { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const message = describeError(e, debug);
    const exitCode = (e as { exitCode?: number }).exitCode ?? EXIT.failure;
    const readiness = readinessChannel();
    // A background child's start error goes to the parent, which prints it (once).
    if (readiness?.pending) readiness.report({ ready: false, error: message, exitCode });
    else console.error(`bpfpilot: ${message}`);
    return exitCode;
  }
}
