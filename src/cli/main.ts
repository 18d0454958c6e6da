/** The `bpfpilot` command line: subcommands and bpftune-compatible root flags. */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { VERSION } from "../version.ts";
import { setProcessName } from "../kernel/process.ts";
import { describeError, EXIT, requireRoot } from "./errors.ts";
import { buildSupportReport, renderSupportText } from "./support.ts";

function supportCommand(setExit: (code: number) => void) {
  return new Command("support")
    .description(
      "report what bpfpilot can do on this kernel: support level, per-netns " +
        "policy, and for every hook the attach kind chosen or why none works",
    )
    .option("--json", "print one JSON object instead of text")
    .option("-L, --legacy", "prefer each hook's fallback attach kinds")
    .addHelpText(
      "after",
      `
Exit status: 0 supported (fully or in legacy mode), 1 not supported or an error.
Needs root. Example: bpfpilot support --json | jq .level`,
    )
    .action((opts) => {
      requireRoot("bpfpilot support");
      const report = buildSupportReport({ legacy: opts.legacy });
      console.log(opts.json ? JSON.stringify(report, null, 2) : renderSupportText(report));
      setExit(report.level === "none" ? EXIT.failure : EXIT.ok);
    });
}

export function buildProgram(setExit: (code: number) => void) {
  const program = new Command()
    .name("bpfpilot")
    .description(
      "BPF-driven auto-tuner for Linux kernel tunables: watches the kernel with BPF, raises a " +
        "limit when it gets in the way, logs what it changed and why, backs off when the admin " +
        "takes over, and can undo everything.",
    )
    .version(VERSION, "-V, --version", "print the version and exit")
    .helpOption("-h, --help", "show help")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });
  program.addCommand(supportCommand(setExit));
  program.addHelpText(
    "after",
    `
Exit status: 0 success, 1 failure (not supported, not root, libbpf missing), 2 usage error.
Environment: BPFPILOT_LIBBPF=<file> uses that libbpf; BPFPILOT_LIBBPF_DIR=<dir> searches only
that directory for libbpf.so.1.`,
  );
  return program;
}

export async function main(args: string[]): Promise<number> {
  setProcessName("bpfpilot");
  let code: number = EXIT.ok;
  const debug = args.includes("--debug") ||
    /^-[a-zA-Z]*d/.test(args.find((a) => /^-[^-]/.test(a)) ?? "");
  const program = buildProgram((c) => code = c);
  try {
    await program.parseAsync(args, { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    console.error(`bpfpilot: ${describeError(e, debug)}`);
    return (e as { exitCode?: number }).exitCode ?? EXIT.failure;
  }
}
