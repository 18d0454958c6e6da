/** node:child_process for commander (see events.ts): only executable subcommands spawn, and
 * bpfpilot has none. */
export function spawn(): never {
  throw new Error("bpfpilot has no executable subcommands");
}
