/**
 * Wire format of the control socket: one JSON object per line in each direction.
 *
 *   request:  {"v":1,"verb":"enable","args":{"target":"tcp_buffer"}}\n
 *             {"v":1,"verb":"status","args":{"netns":"all"}}\n
 *   answer:   {"v":1,"ok":true,"data":...}\n
 *             {"v":1,"ok":false,"error":{"code":"unknown-verb","message":"..."}}\n
 *
 * For bpftune-style use (`echo status | nc -U ...`) a bare line `verb [target]` (`status all`:
 * the netns of a verb that takes one) is accepted too; the answer is always the JSON envelope. A
 * trailing NUL (what bpftune's client sends) and CR are ignored.
 */

import { netnsSelectorError } from "./netns_scope.ts";

export const PROTOCOL_VERSION = 1;

export type ErrorCode =
  | "bad-request" // well-formed JSON, but not a request object
  | "bad-json"
  | "bad-encoding" // not UTF-8
  | "request-too-large"
  | "unsupported-version"
  | "unknown-verb"
  | "bad-args"
  | "not-found" // enable/disable target unknown to the daemon
  | "failed" // the daemon tried and could not do it
  | "busy" // too many clients
  | "timeout"
  | "internal";

/** Thrown by providers (and the parser) to answer with a specific error code. */
export class ControlError extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = "ControlError";
  }
}

/** Verbs in the order `help` lists them, with their help text. */
export const VERBS = {
  help: { arg: false, description: "list supported queries" },
  tuners: { arg: false, description: "show state of tuners" },
  tunables: {
    arg: false,
    netns: true,
    description: "show tunables, their values and who controls them",
  },
  status: { arg: false, netns: true, description: "show live values of tunables" },
  summary: { arg: false, description: "show summary of changes" },
  rollback: { arg: false, description: "show the sysctl commands that would restore originals" },
  enable: { arg: true, description: "let bpfpilot tune <tuner|sysctl> again" },
  disable: { arg: true, description: "stop tuning <tuner|sysctl> (leaves values as they are)" },
  metrics: { arg: false, description: "show metrics (OpenMetrics text)" },
  paths: {
    arg: false,
    description: "show tcp_conn's congestion control per path (address, algorithm, metric, count)",
  },
  jtunables: { arg: false, description: "show list of tunables (bpftune json)" },
  jstatus: { arg: false, description: "show status of tunables (bpftune json)" },
} as const satisfies Record<string, { arg: boolean; netns?: boolean; description: string }>;

export type Verb = keyof typeof VERBS;
export const VERB_NAMES = Object.keys(VERBS) as Verb[];

export function isVerb(name: string): name is Verb {
  return Object.hasOwn(VERBS, name);
}

/** Verbs that take `netns` (which namespaces to show: control/netns_scope.ts). */
export function takesNetns(verb: Verb): boolean {
  return "netns" in VERBS[verb];
}

export interface ControlRequest {
  verb: Verb;
  /** Only for `enable`/`disable`: a tuner name or sysctl name. */
  target?: string;
  /** Only for `tunables`/`status`: which namespaces (absent: the daemon's default, changed). */
  netns?: string;
}

export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export type ControlResponse =
  | { v: typeof PROTOCOL_VERSION; ok: true; data: unknown }
  | { v: typeof PROTOCOL_VERSION; ok: false; error: ErrorBody };

export function okResponse(data: unknown): ControlResponse {
  return { v: PROTOCOL_VERSION, ok: true, data };
}

export function errorResponse(code: ErrorCode, message: string): ControlResponse {
  return { v: PROTOCOL_VERSION, ok: false, error: { code, message } };
}

/** Serialises an answer as one line; JSON.stringify escapes newlines inside strings. */
export function encodeResponse(response: ControlResponse): string {
  return JSON.stringify(response) + "\n";
}

/** Tuner names and sysctl names (dotted or slashed); nothing that could mean something else. */
const TARGET_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,254}$/;
const MAX_SHOWN = 60;

/** Quotes untrusted input for an error message: bounded, with control characters escaped. */
export function showInput(text: string): string {
  const cut = text.length > MAX_SHOWN ? text.slice(0, MAX_SHOWN) + "..." : text;
  return JSON.stringify(cut);
}

function supportedVerbs(): string {
  return VERB_NAMES.join(", ");
}

function checkTarget(verb: Verb, target: unknown): string | undefined {
  if (!VERBS[verb].arg) {
    if (target !== undefined) {
      throw new ControlError("bad-args", `verb '${verb}' takes no argument`);
    }
    return undefined;
  }
  if (target === undefined || target === "") {
    throw new ControlError(
      "bad-args",
      `verb '${verb}' needs a tuner or sysctl name, e.g. '${verb} tcp_buffer'`,
    );
  }
  if (typeof target !== "string" || !TARGET_PATTERN.test(target)) {
    throw new ControlError(
      "bad-args",
      `invalid target ${showInput(String(target))} for '${verb}': expected a tuner or sysctl ` +
        `name (letters, digits, '_', '.', '-', '/')`,
    );
  }
  return target;
}

function checkNetns(verb: Verb, netns: unknown): string | undefined {
  if (netns === undefined) return undefined;
  if (!takesNetns(verb)) {
    throw new ControlError(
      "bad-args",
      `verb '${verb}' takes no netns (only ${VERB_NAMES.filter(takesNetns).join(" and ")} do)`,
    );
  }
  const why = typeof netns === "string" ? netnsSelectorError(netns) : "expected a string";
  if (why !== null) {
    throw new ControlError("bad-args", `invalid netns ${showInput(String(netns))}: ${why}`);
  }
  return netns as string;
}

function checkVerb(verb: string): Verb {
  if (!isVerb(verb)) {
    throw new ControlError(
      "unknown-verb",
      `unknown request ${showInput(verb)}; supported requests are: ${supportedVerbs()}`,
    );
  }
  return verb;
}

function parseBareLine(line: string): ControlRequest {
  const words = line.trim().split(/\s+/);
  if (words.length > 2) {
    throw new ControlError("bad-args", `too many words in request ${showInput(line)}`);
  }
  const verb = checkVerb(words[0]);
  // `status all`, `tunables <netns>`: the second word of a verb that takes a netns is that.
  if (takesNetns(verb) && words[1] !== undefined) {
    return { verb, netns: checkNetns(verb, words[1]) };
  }
  return { verb, target: checkTarget(verb, words[1]) };
}

function parseJsonLine(line: string): ControlRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new ControlError(
      "bad-json",
      `request is not valid JSON; send {"v":1,"verb":"<verb>","args":{}} or a bare verb`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ControlError("bad-request", "request must be a JSON object");
  }
  const request = value as Record<string, unknown>;
  for (const key of Object.keys(request)) {
    if (key !== "v" && key !== "verb" && key !== "args") {
      throw new ControlError("bad-request", `unexpected field ${showInput(key)} in request`);
    }
  }
  if (request.v !== PROTOCOL_VERSION) {
    throw new ControlError(
      "unsupported-version",
      `protocol version ${showInput(String(request.v))} is not supported; this daemon speaks ` +
        `v${PROTOCOL_VERSION} (is the client newer than the daemon?)`,
    );
  }
  if (typeof request.verb !== "string") {
    throw new ControlError("bad-request", `field "verb" must be a string`);
  }
  const verb = checkVerb(request.verb);
  const args = request.args ?? {};
  if (typeof args !== "object" || args === null || Array.isArray(args)) {
    throw new ControlError("bad-args", `field "args" must be an object`);
  }
  const argMap = args as Record<string, unknown>;
  for (const key of Object.keys(argMap)) {
    if (key !== "target" && key !== "netns") {
      throw new ControlError("bad-args", `unknown argument ${showInput(key)} for '${verb}'`);
    }
  }
  const netns = checkNetns(verb, argMap.netns);
  return {
    verb,
    target: checkTarget(verb, argMap.target),
    ...(netns === undefined ? {} : { netns }),
  };
}

/**
 * Parses one request line (terminator already removed). Throws ControlError with a code the
 * client can act on; never anything else.
 */
export function parseRequestLine(line: string): ControlRequest {
  const text = line.replace(/\0+$/, "").replace(/\r$/, "");
  if (text.trim() === "") {
    throw new ControlError("bad-request", `empty request; try 'help'`);
  }
  return text.trimStart().startsWith("{") ? parseJsonLine(text) : parseBareLine(text);
}

/** The request line a client sends. */
export function encodeRequest(request: ControlRequest): string {
  // Only what was given: a daemon from before `netns` refuses the argument it does not know.
  const args = {
    ...(request.target === undefined ? {} : { target: request.target }),
    ...(request.netns === undefined ? {} : { netns: request.netns }),
  };
  return JSON.stringify({ v: PROTOCOL_VERSION, verb: request.verb, args }) + "\n";
}

/** Validates an answer line read by a client; throws on anything not a v1 envelope. */
export function parseResponseLine(line: string): ControlResponse {
  const value = JSON.parse(line) as Record<string, unknown> | null;
  if (typeof value !== "object" || value === null || value.v !== PROTOCOL_VERSION) {
    throw new Error("answer is not a v1 control response");
  }
  if (value.ok === true && "data" in value) return value as ControlResponse;
  const error = value.error as Record<string, unknown> | undefined;
  if (
    value.ok === false && typeof error === "object" && error !== null &&
    typeof error.code === "string" && typeof error.message === "string"
  ) {
    return value as ControlResponse;
  }
  throw new Error("answer is not a v1 control response");
}
