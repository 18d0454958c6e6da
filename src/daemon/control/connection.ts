/**
 * Serves one control-socket client: reads newline-terminated requests within the limits,
 * answers each, and closes on abuse (over-long line, too slow, too many bad requests). Nothing
 * a client sends can throw out of here.
 */
import type { ControlLimits } from "./limits.ts";
import {
  ControlError,
  type ControlResponse,
  encodeResponse,
  errorResponse,
  okResponse,
  parseRequestLine,
} from "./protocol.ts";
import type { ControlProvider } from "./provider.ts";
import { runVerb } from "./verbs.ts";

const NEWLINE = 0x0a;
const READ_CHUNK = 8192;

type NextLine =
  | { kind: "line"; bytes: Uint8Array }
  | { kind: "too-long" }
  | { kind: "need-more" };

/** Accumulates bytes and splits them into lines, refusing to hold more than one line's worth. */
export class LineBuffer {
  private buffer = new Uint8Array(0);

  constructor(private readonly maxLineBytes: number) {}

  push(chunk: Uint8Array): void {
    const merged = new Uint8Array(this.buffer.length + chunk.length);
    merged.set(this.buffer);
    merged.set(chunk, this.buffer.length);
    this.buffer = merged;
  }

  next(): NextLine {
    const end = this.buffer.indexOf(NEWLINE);
    if (end < 0) {
      return this.buffer.length > this.maxLineBytes ? { kind: "too-long" } : { kind: "need-more" };
    }
    if (end > this.maxLineBytes) return { kind: "too-long" };
    const bytes = this.buffer.slice(0, end);
    this.buffer = this.buffer.slice(end + 1);
    return { kind: "line", bytes };
  }

  /** Bytes after the last newline: a final request from a client that half-closed without one. */
  rest(): Uint8Array {
    const rest = this.buffer;
    this.buffer = new Uint8Array(0);
    return rest;
  }
}

export interface ConnectionContext {
  provider: ControlProvider;
  limits: ControlLimits;
  /** Aborted when the server shuts down: pending work gives up at once. */
  closing: AbortSignal;
  /** Reports provider failures (not client mistakes) to the daemon log. */
  onError: (message: string) => void;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Resolves after `ms`, or at once if the signal aborts; never leaves a timer behind. */
function raceTimeout<T>(
  work: Promise<T>,
  ms: number,
  signal: AbortSignal,
): Promise<T | "timeout" | "aborted"> {
  return new Promise((resolve, reject) => {
    const onAbort = () => finish(() => resolve("aborted"));
    const timer = setTimeout(() => finish(() => resolve("timeout")), ms);
    let done = false;
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      settle();
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort);
    work.then((value) => finish(() => resolve(value)), (error) => finish(() => reject(error)));
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Answers one request line; every failure becomes an error answer. */
export async function answerLine(
  bytes: Uint8Array,
  context: ConnectionContext,
): Promise<ControlResponse> {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return errorResponse("bad-encoding", "request is not valid UTF-8");
  }
  try {
    const request = parseRequestLine(text);
    const work = Promise.resolve().then(() => runVerb(context.provider, request));
    const result = await raceTimeout(work, context.limits.handlerTimeoutMs, context.closing);
    if (result === "timeout") {
      work.catch(() => {}); // it may still fail later; nobody is waiting for it
      context.onError(
        `control request '${request.verb}' took longer than ` +
          `${context.limits.handlerTimeoutMs} ms`,
      );
      return errorResponse("timeout", `the daemon did not finish '${request.verb}' in time`);
    }
    if (result === "aborted") {
      work.catch(() => {});
      return errorResponse("internal", "the daemon is shutting down");
    }
    // The answer must be serialisable; check here so a bad provider value is an error answer.
    JSON.stringify(result);
    return okResponse(result);
  } catch (error) {
    if (error instanceof ControlError) return errorResponse(error.code, error.message);
    context.onError(`control request failed: ${describe(error)}`);
    return errorResponse("internal", `internal error: ${describe(error)}`);
  }
}

/** Writes everything or gives up after `ms` (a client that does not read). */
export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
  ms: number,
  signal: AbortSignal,
): Promise<boolean> {
  const work = (async () => {
    let offset = 0;
    while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
  })();
  try {
    return (await raceTimeout(work, ms, signal)) !== "timeout";
  } catch {
    return false; // client went away (EPIPE, reset)
  } finally {
    work.catch(() => {});
  }
}

const encoder = new TextEncoder();

async function send(
  conn: Deno.Conn,
  response: ControlResponse,
  context: ConnectionContext,
): Promise<boolean> {
  const bytes = encoder.encode(encodeResponse(response));
  return await writeAll(conn, bytes, context.limits.writeTimeoutMs, context.closing);
}

type ReadResult = { kind: "data"; bytes: Uint8Array } | { kind: "eof" | "timeout" | "gone" };

async function readBefore(
  conn: Deno.Conn,
  deadline: number,
  signal: AbortSignal,
): Promise<ReadResult> {
  const buffer = new Uint8Array(READ_CHUNK);
  const read = conn.read(buffer);
  try {
    const result = await raceTimeout(read, Math.max(0, deadline - Date.now()), signal);
    if (result === "timeout") return { kind: "timeout" };
    if (result === "aborted") return { kind: "gone" };
    if (result === null) return { kind: "eof" };
    return { kind: "data", bytes: buffer.subarray(0, result) };
  } catch {
    return { kind: "gone" };
  } finally {
    read.catch(() => {}); // settles with an error once the connection is closed
  }
}

/** Serves requests on `conn` until the client leaves or breaks a limit; does not close it. */
export async function serveConnection(conn: Deno.Conn, context: ConnectionContext): Promise<void> {
  const { limits } = context;
  const lines = new LineBuffer(limits.maxLineBytes);
  let badRequests = 0;
  let deadline = Date.now() + limits.idleTimeoutMs;
  while (!context.closing.aborted) {
    const next = lines.next();
    if (next.kind === "too-long") {
      await send(
        conn,
        errorResponse(
          "request-too-large",
          `request line longer than ${limits.maxLineBytes} bytes; closing connection`,
        ),
        context,
      );
      return;
    }
    if (next.kind === "line") {
      const response = await answerLine(next.bytes, context);
      if (!response.ok && isClientMistake(response.error.code)) badRequests++;
      if (!await send(conn, response, context)) return;
      if (badRequests >= limits.maxBadRequestsPerConnection) return;
      deadline = Date.now() + limits.idleTimeoutMs;
      continue;
    }
    const read = await readBefore(conn, deadline, context.closing);
    if (read.kind === "data") {
      lines.push(read.bytes);
    } else if (read.kind === "eof") {
      // Half-closed: answer a final unterminated request (bpftune's client sends no newline).
      const rest = lines.rest();
      if (rest.length > 0) await send(conn, await answerLine(rest, context), context);
      return;
    } else if (read.kind === "timeout") {
      await send(
        conn,
        errorResponse(
          "timeout",
          `no complete request within ${limits.idleTimeoutMs} ms; closing connection`,
        ),
        context,
      );
      return;
    } else {
      return;
    }
  }
}

function isClientMistake(code: string): boolean {
  return code !== "internal" && code !== "timeout" && code !== "failed" && code !== "not-found";
}

/** Tells a client over the limit to come back later. */
export async function rejectBusy(
  conn: Deno.Conn,
  context: ConnectionContext,
  limit: number,
): Promise<void> {
  const response = errorResponse(
    "busy",
    `too many control clients (limit ${limit}); retry shortly`,
  );
  await send(conn, response, context);
}
