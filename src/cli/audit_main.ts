/**
 * Stand-alone entry for `bpfpilot audit` (deno run -A src/cli/audit_main.ts [options]) until
 * the main CLI mounts auditCommand(). Usage errors exit 2, like every other error.
 */
import { CommanderError } from "@commander-js/extra-typings";
import { auditCommand } from "./audit.ts";
import { EXIT_ERROR, EXIT_OK } from "../audit/report.ts";

export async function auditMain(args: string[]): Promise<number> {
  let code = EXIT_OK;
  const cmd = auditCommand({ setExit: (c) => code = c }).name("bpfpilot audit");
  try {
    await cmd.parseAsync(args, { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_ERROR;
    throw e;
  }
}

if (import.meta.main) Deno.exit(await auditMain(Deno.args));
