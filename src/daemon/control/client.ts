/**
 * Client side of the control socket: one request, one answer, with failures turned into
 * messages a user can act on (daemon not running, permission, timeout).
 */
import {
  type ControlRequest,
  type ControlResponse,
  encodeRequest,
  parseResponseLine,
} from "./protocol.ts";
import { DEFAULT_CONTROL_SOCKET, groupName, rootSocketPath } from "./socket_file.ts";
import { checkTrustedDir, lstatPath, UntrustedPathError } from "../../kernel/trusted_path.ts";

export type ClientFailure =
  | "not-running"
  | "permission-denied"
  | "untrusted"
  | "timeout"
  | "protocol";

export class ControlClientError extends Error {
  constructor(readonly kind: ClientFailure, message: string) {
    super(message);
    this.name = "ControlClientError";
  }
}

export interface ClientOptions {
  socketPath?: string;
  /** Whole exchange, connect to answer. */
  timeoutMs?: number;
  /** Retries when the daemon answers `busy`, with growing pauses. */
  busyRetries?: number;
  /** Largest answer accepted (metrics of many namespaces can be big, but not unbounded). */
  maxResponseBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_BUSY_RETRIES = 3;
const DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024;
const START_HINT = "start it with `systemctl start bpfpilot` or `bpfpilot run`";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function permissionMessage(path: string): Promise<string> {
  let who = "needs root (try sudo)";
  try {
    const info = await Deno.stat(path);
    const groupAccess = ((info.mode ?? 0) & 0o060) === 0o060;
    if (groupAccess && info.gid !== null && info.gid !== 0) {
      const name = (await groupName(info.gid)) ?? String(info.gid);
      who = `needs root or membership in group ${name} (after adding yourself, log in again)`;
    }
  } catch {
    // cannot even stat it: the plain root message is the right one
  }
  return `permission denied on the bpfpilot control socket ${path}: querying the daemon ${who}`;
}

/**
 * Whatever answers on the socket is believed (its rollback plan is printed for root to run), so
 * the socket must be owned by root (or this user) and sit in a directory no one else can write:
 * otherwise another account could have put its own socket there.
 */
export function checkSocketTrust(path: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return; // absent: connect() says the daemon is not running
  }
  const self = Deno.uid() ?? 0;
  const why = !info.isSocket
    ? "it is not a socket"
    : info.uid !== 0 && info.uid !== self
    ? `it is owned by uid ${info.uid}, not root`
    : null;
  if (why) {
    throw new ControlClientError(
      "untrusted",
      `refusing the control socket ${path}: ${why}; it is not bpfpilot's. Check who created it`,
    );
  }
  try {
    const cut = path.lastIndexOf("/");
    const dir = Deno.realPathSync(cut < 0 ? "." : cut === 0 ? "/" : path.slice(0, cut));
    checkTrustedDir(dir, "control socket directory", lstatPath, self);
  } catch (e) {
    if (e instanceof UntrustedPathError) {
      throw new ControlClientError(
        "untrusted",
        `refusing the control socket ${path}: ${e.message}`,
      );
    }
    throw e;
  }
}

async function connect(path: string): Promise<Deno.UnixConn> {
  checkSocketTrust(path);
  try {
    return await Deno.connect({ transport: "unix", path });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
      throw new ControlClientError(
        "not-running",
        `bpfpilot daemon is not running (no control socket at ${path}); ${START_HINT}`,
      );
    }
    if (error instanceof Deno.errors.ConnectionRefused) {
      throw new ControlClientError(
        "not-running",
        `bpfpilot daemon is not running (control socket ${path} is left over and refuses ` +
          `connections); ${START_HINT}`,
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new ControlClientError("permission-denied", await permissionMessage(path));
    }
    // Deno's own sandbox refusal is a packaging problem, reported as such by the CLI.
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new ControlClientError(
      "protocol",
      `cannot connect to the bpfpilot control socket ${path}: ${
        error instanceof Error ? error.message : error
      }`,
    );
  }
}

async function exchange(
  conn: Deno.UnixConn,
  request: ControlRequest,
  path: string,
  maxBytes: number,
): Promise<ControlResponse> {
  const out = new TextEncoder().encode(encodeRequest(request));
  let offset = 0;
  try {
    while (offset < out.length) offset += await conn.write(out.subarray(offset));
  } catch (error) {
    // Over its client limit the daemon answers `busy` and closes before reading: read that.
    if (
      !(error instanceof Deno.errors.BrokenPipe || error instanceof Deno.errors.ConnectionReset)
    ) throw error;
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buffer = new Uint8Array(65536);
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    const chunk = buffer.slice(0, n);
    chunks.push(chunk);
    total += n;
    if (chunk.includes(0x0a)) break;
    if (total > maxBytes) {
      throw new ControlClientError("protocol", `answer from ${path} exceeds ${maxBytes} bytes`);
    }
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  const end = all.indexOf(0x0a);
  if (end < 0) {
    throw new ControlClientError(
      "protocol",
      `the bpfpilot daemon closed ${path} without a complete answer; see its log ` +
        `(journalctl -u bpfpilot)`,
    );
  }
  try {
    return parseResponseLine(new TextDecoder().decode(all.subarray(0, end)));
  } catch {
    throw new ControlClientError(
      "protocol",
      `the process on ${path} sent an answer this client does not understand; are bpfpilot ` +
        `and the daemon the same version?`,
    );
  }
}

async function requestOnce(
  request: ControlRequest,
  path: string,
  timeoutMs: number,
  maxBytes: number,
): Promise<ControlResponse> {
  let conn: Deno.UnixConn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new ControlClientError(
          "timeout",
          `the bpfpilot daemon did not answer within ${timeoutMs / 1000} s on ${path}; it may ` +
            `be overloaded or hung (see journalctl -u bpfpilot)`,
        ),
      );
      conn?.close(); // unblocks the pending read
      conn = undefined;
    }, timeoutMs);
  });
  const work = (async () => {
    conn = await connect(path);
    return await exchange(conn, request, path, maxBytes);
  })();
  try {
    return await Promise.race([work, timeout]);
  } catch (error) {
    if (error instanceof ControlClientError) throw error;
    throw new ControlClientError(
      "protocol",
      `lost the connection to the bpfpilot daemon on ${path}: ${
        error instanceof Error ? error.message : error
      }`,
    );
  } finally {
    clearTimeout(timer);
    work.catch(() => {});
    try {
      conn?.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Root talks to its own socket when the daemon has one (a `--control-group` daemon): the group's
 * members cannot take its slots. A stale or absent one falls back to the shared socket.
 */
async function requestPreferringRoot(
  request: ControlRequest,
  path: string,
  timeoutMs: number,
  maxBytes: number,
): Promise<ControlResponse> {
  if (Deno.uid() === 0) {
    try {
      return await requestOnce(request, rootSocketPath(path), timeoutMs, maxBytes);
    } catch (error) {
      if (!(error instanceof ControlClientError && error.kind === "not-running")) throw error;
    }
  }
  return await requestOnce(request, path, timeoutMs, maxBytes);
}

/** Sends one request and returns the daemon's answer (which may be an error answer). */
export async function requestControl(
  request: ControlRequest,
  options: ClientOptions = {},
): Promise<ControlResponse> {
  const path = options.socketPath ?? DEFAULT_CONTROL_SOCKET;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const retries = options.busyRetries ?? DEFAULT_BUSY_RETRIES;
  const maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE;
  const started = Date.now();
  for (let attempt = 0;; attempt++) {
    const response = await requestPreferringRoot(request, path, timeoutMs, maxBytes);
    if (response.ok || response.error.code !== "busy") return response;
    if (attempt >= retries) {
      const waited = ((Date.now() - started) / 1000).toFixed(1);
      return {
        ...response,
        error: {
          ...response.error,
          message: `${response.error.message.replace(/; retry shortly$/, "")}, still after ` +
            `${attempt + 1} attempts over ${waited} s: other clients hold every connection; ` +
            `try again later`,
        },
      };
    }
    await sleep(50 * 3 ** attempt + Math.random() * 50);
  }
}
