/**
 * node:process for commander (see events.ts): its output goes through `stdout`/`stderr`, its
 * help wraps at their width, and it exits through `exit`. Deno's own APIs underneath.
 */
function stream(file: typeof Deno.stdout | typeof Deno.stderr) {
  const encoder = new TextEncoder();
  return {
    get isTTY(): boolean {
      return file.isTerminal();
    },
    get columns(): number | undefined {
      try {
        return Deno.consoleSize().columns;
      } catch {
        return undefined;
      }
    },
    hasColors: (): boolean => !Deno.noColor && file.isTerminal(),
    write(text: string): boolean {
      const bytes = encoder.encode(text);
      for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
      return true;
    },
  };
}

export const stdout = stream(Deno.stdout);
export const stderr = stream(Deno.stderr);
export const argv: string[] = ["deno", Deno.mainModule, ...Deno.args];
export const execArgv: string[] = [];
export const execPath: string = Deno.execPath();
export const platform: string = Deno.build.os;
export const versions: Record<string, string> = { deno: Deno.version.deno };
export const exitCode: number | undefined = undefined;
/** Electron's: commander reads it only when `versions.electron` is set, never here. */
export const defaultApp = false;
/** Environment reads only (commander's FORCE_COLOR, NO_COLOR and options' envVar). */
export const env: Record<string, string | undefined> = new Proxy({}, {
  get: (_t, name) => typeof name === "string" ? Deno.env.get(name) : undefined,
  has: (_t, name) => typeof name === "string" && Deno.env.get(name) !== undefined,
});

export function exit(code?: number): never {
  Deno.exit(code ?? 0);
}

/** Signal forwarding to executable subcommands, which bpfpilot has none of. */
export function on(): void {}
