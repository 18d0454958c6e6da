/**
 * `-D` readiness: the parent of a background daemon waits on a pipe (the child's fd 3) until the
 * child reports that it runs (every tuner loaded, control socket up) or why it could not start.
 * One JSON line, then the child closes its end; a child that dies before writing is seen as EOF.
 */
import { type Libc, openLibc } from "../kernel/libc.ts";

/** The environment variable that tells a child which fd to report on (set by the parent only). */
export const READY_FD_ENV = "BPFPILOT_READY_FD";

export type ReadinessReport =
  | { ready: true; pid: number; pidFile: string | null }
  | { ready: false; error: string; exitCode: number };

/** The child's end: report once, then close. */
export class ReadinessChannel {
  #fd: number | null;
  #libc: Libc;

  private constructor(fd: number, libc: Libc) {
    this.#fd = fd;
    this.#libc = libc;
  }

  /** The channel named by the environment (which is then cleared), or null outside `-D`. */
  static fromEnv(): ReadinessChannel | null {
    const raw = Deno.env.get(READY_FD_ENV);
    if (raw === undefined) return null;
    Deno.env.delete(READY_FD_ENV); // nothing this process starts may inherit the duty
    const fd = Number(raw);
    if (!Number.isInteger(fd) || fd < 3 || fd > 1023) return null;
    const libc = openLibc();
    return libc ? new ReadinessChannel(fd, libc) : null;
  }

  get pending(): boolean {
    return this.#fd !== null;
  }

  report(r: ReadinessReport): void {
    if (this.#fd === null) return;
    const bytes = new TextEncoder().encode(JSON.stringify(r) + "\n");
    try {
      // The pipe is a socket in the child (Deno's extra stdio): only write(2) reaches it, since
      // /proc/self/fd/3 cannot be opened on a socket.
      this.#libc.write(this.#fd, bytes, BigInt(bytes.length));
    } catch {
      // the parent is gone: nobody to tell
    }
    this.#libc.close(this.#fd);
    this.#fd = null;
  }
}

/** Parses what the child wrote (the first line); null for nothing or garbage. */
export function parseReadiness(text: string): ReadinessReport | null {
  const line = text.split("\n", 1)[0].trim();
  if (!line) return null;
  try {
    const r = JSON.parse(line);
    if (r?.ready === true && Number.isInteger(r.pid)) {
      return { ready: true, pid: r.pid, pidFile: typeof r.pidFile === "string" ? r.pidFile : null };
    }
    if (r?.ready === false && typeof r.error === "string") {
      return {
        ready: false,
        error: r.error,
        exitCode: Number.isInteger(r.exitCode) ? r.exitCode : 1,
      };
    }
  } catch {
    // fall through
  }
  return null;
}

let channel: ReadinessChannel | null | undefined;

/** This process's channel (read from the environment once). */
export function readinessChannel(): ReadinessChannel | null {
  if (channel === undefined) channel = ReadinessChannel.fromEnv();
  return channel;
}
