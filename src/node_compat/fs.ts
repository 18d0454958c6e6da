/** node:fs for commander (see events.ts): it looks for executable subcommands, bpfpilot has none. */
export function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

export function realpathSync(path: string): string {
  return Deno.realPathSync(path);
}
