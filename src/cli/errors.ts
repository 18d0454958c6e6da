/**
 * Turning failures into one clear line for the user (cause and fix), never a stack trace. Known
 * error types carry their own messages; anything else is reported as an internal error.
 */
import { BpfError } from "../libbpf/errors.ts";
import { LibbpfUnavailableError } from "../libbpf/loader.ts";

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = "UserError";
  }
}

export function describeError(e: unknown, debug = false): string {
  if (e instanceof LibbpfUnavailableError || e instanceof UserError) return e.message;
  if (e instanceof BpfError) {
    return debug && e.detail.length ? `${e.message}\n${e.detail.join("\n")}` : e.message;
  }
  if (e instanceof Error && e.name === "NotCapable") {
    return "bpfpilot was started without the permissions it needs; run it with `deno run -A` " +
      "or through scripts/bpfpilot";
  }
  const msg = e instanceof Error ? e.message : String(e);
  return debug && e instanceof Error && e.stack
    ? `internal error: ${e.stack}`
    : `internal error: ${msg} (run with --debug for details)`;
}

export function requireRoot(
  what: string,
  why = "it loads BPF programs and writes sysctls",
): void {
  if (Deno.uid() !== 0) {
    throw new UserError(`${what} needs root (${why}); run it as root, e.g. with sudo`);
  }
}
