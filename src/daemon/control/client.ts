/**
 * Client side of the control socket: one request, one answer, with failures turned into
 * messages a user can act on (daemon not running, permission, timeout). The socket is reached
 * through libc, because only a descriptor tells who answers (SO_PEERCRED).
 */
import {
  type ControlRequest,
  type ControlResponse,
  encodeRequest,
  parseResponseLine,
} from "./protocol.ts";
import { DEFAULT_CONTROL_SOCKET, groupName, rootSocketPath } from "./socket_file.ts";
import { checkTrustedDir, lstatPath, UntrustedPathError } from "../../kernel/trusted_path.ts";
import {
  AF_UNIX,
  describeErrno,
  ERRNO,
  errnoOf,
  type Libc,
  MSG_NOSIGNAL,
  openLibc,
  peerCredentials,
  pollFd,
  POLLIN,
  POLLOUT,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SUN_PATH_MAX,
  unixAddress,
} from "../../kernel/libc_socket.ts";

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

const TIMEOUT_HINT = "it may be overloaded or hung (see journalctl -u bpfpilot)";

function timedOut(path: string, timeoutMs: number): ControlClientError {
  return new ControlClientError(
    "timeout",
    `the bpfpilot daemon did not answer within ${timeoutMs / 1000} s on ${path}; ${TIMEOUT_HINT}`,
  );
}

function lostConnection(libc: Libc, path: string, errno: number): ControlClientError {
  return new ControlClientError(
    "protocol",
    `lost the connection to the bpfpilot daemon on ${path}: ${describeErrno(libc, errno)}`,
  );
}

/** connect(2)'s errno as the message a user can act on. */
async function connectFailure(libc: Libc, path: string, errno: number) {
  if (errno === ERRNO.ENOENT || errno === ERRNO.ENOTDIR) {
    return new ControlClientError(
      "not-running",
      `bpfpilot daemon is not running (no control socket at ${path}); ${START_HINT}`,
    );
  }
  if (errno === ERRNO.ECONNREFUSED) {
    return new ControlClientError(
      "not-running",
      `bpfpilot daemon is not running (control socket ${path} is left over and refuses ` +
        `connections); ${START_HINT}`,
    );
  }
  if (errno === ERRNO.EACCES || errno === ERRNO.EPERM) {
    return new ControlClientError("permission-denied", await permissionMessage(path));
  }
  return new ControlClientError(
    "protocol",
    `cannot connect to the bpfpilot control socket ${path}: ${describeErrno(libc, errno)}`,
  );
}

/**
 * One exchange on one descriptor: connect, check who answers (SO_PEERCRED: root or this user),
 * then request and answer on that same connection, so nothing can swap in between. The socket
 * is non-blocking; waits are poll(2) off the event loop, bounded by `deadline`.
 */
class PeerConnection {
  private constructor(
    private readonly libc: Libc,
    private readonly fd: number,
    private readonly path: string,
    private readonly deadline: number,
    private readonly timeoutMs: number,
  ) {}

  static async open(path: string, timeoutMs: number): Promise<PeerConnection> {
    checkSocketTrust(path);
    const libc = openLibc();
    if (!libc) {
      throw new ControlClientError(
        "protocol",
        `cannot check who answers on the control socket ${path}: glibc's socket calls are not ` +
          `reachable (bpfpilot needs glibc on x86-64 or aarch64, and FFI permission)`,
      );
    }
    const address = unixAddress(path);
    if (!address) {
      throw new ControlClientError(
        "protocol",
        `the control socket path ${path} is too long for a unix socket (` +
          `${SUN_PATH_MAX - 1} bytes at most); pass a shorter --socket`,
      );
    }
    const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw await connectFailure(libc, path, errnoOf(libc));
    const conn = new PeerConnection(libc, fd, path, Date.now() + timeoutMs, timeoutMs);
    try {
      await conn.connect(address);
      conn.checkPeer();
      return conn;
    } catch (error) {
      conn.close();
      throw error;
    }
  }

  private remaining(): number {
    const left = this.deadline - Date.now();
    if (left <= 0) throw timedOut(this.path, this.timeoutMs);
    return left;
  }

  private async connect(address: Uint8Array): Promise<void> {
    while (this.libc.connect(this.fd, address, address.length) < 0) {
      const errno = errnoOf(this.libc);
      if (errno === ERRNO.EINTR) continue;
      // A full listen backlog: a unix socket's non-blocking connect must simply be retried.
      if (errno !== ERRNO.EAGAIN) throw await connectFailure(this.libc, this.path, errno);
      await sleep(Math.min(20, this.remaining()));
      this.remaining();
    }
  }

  /** The daemon runs as root (or, for tests and unprivileged runs, as this very user). */
  private checkPeer(): void {
    const peer = peerCredentials(this.libc, this.fd);
    if (typeof peer === "number") throw lostConnection(this.libc, this.path, -peer);
    const self = Deno.uid() ?? 0;
    if (peer.uid !== 0 && peer.uid !== self) {
      throw new ControlClientError(
        "untrusted",
        `refusing the control socket ${this.path}: the process answering on it (pid ` +
          `${peer.pid}) runs as uid ${peer.uid}, not root; it is not bpfpilot's. Check who ` +
          `listens on it`,
      );
    }
  }

  private async wait(events: number): Promise<void> {
    while (!(await pollFd(this.libc, this.fd, events, this.remaining())));
  }

  async write(out: Uint8Array): Promise<void> {
    for (let offset = 0; offset < out.length;) {
      const rest = out.subarray(offset);
      const n = Number(this.libc.sendto(this.fd, rest, BigInt(rest.length), MSG_NOSIGNAL, null, 0));
      if (n >= 0) {
        offset += n;
        continue;
      }
      const errno = errnoOf(this.libc);
      if (errno === ERRNO.EINTR) continue;
      if (errno === ERRNO.EAGAIN) {
        await this.wait(POLLOUT);
        continue;
      }
      // Over its client limit the daemon answers `busy` and closes before reading: read that.
      if (errno === ERRNO.EPIPE || errno === ERRNO.ECONNRESET) return;
      throw lostConnection(this.libc, this.path, errno);
    }
  }

  /** Reads until a newline or the end; more than maxBytes without one is a protocol error. */
  async readLine(maxBytes: number): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const buffer = new Uint8Array(65536);
    while (true) {
      const n = Number(this.libc.read(this.fd, buffer, BigInt(buffer.length)));
      if (n === 0) break;
      if (n < 0) {
        const errno = errnoOf(this.libc);
        if (errno === ERRNO.EINTR) continue;
        if (errno !== ERRNO.EAGAIN) throw lostConnection(this.libc, this.path, errno);
        await this.wait(POLLIN);
        continue;
      }
      const chunk = buffer.slice(0, n);
      chunks.push(chunk);
      total += n;
      if (chunk.includes(0x0a)) break;
      if (total > maxBytes) {
        throw new ControlClientError(
          "protocol",
          `answer from ${this.path} exceeds ${maxBytes} bytes`,
        );
      }
    }
    const all = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
    }
    return all;
  }

  close(): void {
    this.libc.close(this.fd);
  }
}

function parseAnswer(all: Uint8Array, path: string): ControlResponse {
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
  const conn = await PeerConnection.open(path, timeoutMs);
  try {
    await conn.write(new TextEncoder().encode(encodeRequest(request)));
    return parseAnswer(await conn.readLine(maxBytes), path);
  } finally {
    conn.close();
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
