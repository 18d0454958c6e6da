/**
 * Process-wide libbpf state: the opened library, errno access, error construction and the print
 * callback that routes libbpf's own log into bpfpilot's logger.
 */
import { BpfError } from "./errors.ts";
import { type Libbpf, openLibbpf } from "./loader.ts";

export type LibbpfLogLevel = "warn" | "info" | "debug";
export type LibbpfLogSink = (level: LibbpfLogLevel, line: string) => void;

const LEVELS: LibbpfLogLevel[] = ["warn", "info", "debug"];
let sink: LibbpfLogSink = () => {};
let capture: string[] | null = null;
let printCallback:
  | Deno.UnsafeCallback<
    { parameters: ["i32", "pointer", "pointer"]; result: "i32" }
  >
  | null = null;

export function lib(): Libbpf {
  const l = openLibbpf();
  if (!printCallback) installPrint(l);
  return l;
}

/** Where libbpf's messages go (the daemon passes its logger; quiet by default). */
export function setLibbpfLogSink(s: LibbpfLogSink): void {
  sink = s;
}

/** Runs fn while collecting libbpf's warnings, so a failure can carry the verifier's words. */
export function withCapturedLog<T>(fn: () => T): { result?: T; error?: unknown; log: string[] } {
  const prev = capture;
  capture = [];
  const log = capture;
  try {
    return { result: fn(), log };
  } catch (error) {
    return { error, log };
  } finally {
    capture = prev;
  }
}

function installPrint(l: Libbpf) {
  // va_list is a pointer on x86_64 and aarch64 SysV: hand it to vasprintf exactly once.
  const out = new BigUint64Array(1);
  const outBytes = new Uint8Array(out.buffer);
  printCallback = new Deno.UnsafeCallback(
    { parameters: ["i32", "pointer", "pointer"], result: "i32" } as const,
    (level, fmt, ap) => {
      const n = l.libc.vasprintf(outBytes, fmt, ap);
      if (n < 0) return 0;
      const p = Deno.UnsafePointer.create(out[0]);
      const text = p ? Deno.UnsafePointerView.getCString(p) : "";
      l.libc.free(p);
      for (const line of text.split("\n")) {
        if (!line.trim()) continue;
        if (capture && level === 0) capture.push(line);
        sink(LEVELS[level] ?? "debug", line);
      }
      return n;
    },
  );
  l.bpf.libbpf_set_print(printCallback.pointer);
}

export function errno(): number {
  const p = lib().libc.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

export function strerror(err: number): string {
  const buf = new Uint8Array(256);
  lib().bpf.libbpf_strerror(err, buf, 256n);
  const end = buf.indexOf(0);
  return new TextDecoder().decode(buf.subarray(0, end < 0 ? buf.length : end));
}

/** libbpf 1.x: int calls return -errno. */
export function checkInt(rc: number, operation: string, detail: string[] = []): number {
  if (rc < 0) throw new BpfError(operation, -rc, strerror(-rc), detail);
  return rc;
}

/** libbpf 1.x: pointer calls return NULL and set errno; read it at once, on this thread. */
export function checkPtr(
  p: Deno.PointerValue,
  operation: string,
  detail: string[] = [],
): Deno.PointerObject {
  if (p === null) {
    const e = errno() || 22;
    throw new BpfError(operation, e, strerror(e), detail);
  }
  return p;
}

export function possibleCpus(): number {
  return checkInt(lib().bpf.libbpf_num_possible_cpus(), "counting possible CPUs");
}
