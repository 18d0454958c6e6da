/**
 * The daemon's control socket server (AF_UNIX only; bpftune's unauthenticated TCP port is
 * exactly what this replaces). Everything is asynchronous: a slow or hostile client costs a
 * file descriptor and a few KiB, never the daemon's event loop.
 */
import { type ControlLimits, resolveLimits } from "./limits.ts";
import { type ConnectionContext, rejectBusy, serveConnection } from "./connection.ts";
import type { ControlProvider } from "./provider.ts";
import {
  bindControlSocket,
  type BoundSocket,
  DEFAULT_CONTROL_SOCKET,
  removeControlSocket,
  rootSocketPath,
} from "./socket_file.ts";

export interface ControlServerOptions {
  provider: ControlProvider;
  /** Socket path; default /run/bpfpilot/control.sock. */
  path?: string;
  /** Group (name or gid) allowed to use the socket: mode 0660 instead of 0600. */
  group?: string | number;
  limits?: Partial<ControlLimits>;
  /** Sink for the daemon log: provider failures and accept errors. */
  onError?: (message: string) => void;
}

export interface ControlServer {
  readonly path: string;
  /**
   * Root's own socket (mode 0600) beside a group socket, so members of the group cannot take
   * every slot and lock root out; null without a group (the one socket is root's alone then).
   */
  readonly rootPath: string | null;
  /** Connections currently being served on both sockets (rejected "busy" ones excluded). */
  readonly clients: number;
  /** Stops accepting, drops clients, removes the socket file. Idempotent. */
  close(): Promise<void>;
}

const ACCEPT_RETRY_MS = 100;

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/**
 * Binds the socket (see socket_file.ts for the safety rules) and starts serving. Throws
 * ControlSocketError, with cause and fix in its message, when the socket cannot be created.
 */
export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const limits = resolveLimits(options.limits);
  const path = options.path ?? DEFAULT_CONTROL_SOCKET;
  const onError = options.onError ?? (() => {});
  const sockets: { path: string; bound: BoundSocket; maxClients: number }[] = [];
  const rootPath = options.group === undefined ? null : rootSocketPath(path);
  try {
    sockets.push({
      path,
      bound: await bindControlSocket(path, options.group),
      maxClients: limits.maxClients,
    });
    if (rootPath !== null) {
      sockets.push({
        path: rootPath,
        bound: await bindControlSocket(rootPath),
        maxClients: limits.rootClients,
      });
    }
  } catch (error) {
    for (const { path, bound } of sockets) {
      bound.listener.close();
      await removeControlSocket(path, bound.identity);
    }
    throw error;
  }

  const shutdown = new AbortController();
  const context: ConnectionContext = {
    provider: options.provider,
    limits,
    closing: shutdown.signal,
    onError,
  };
  const open = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let serving = 0;

  const track = (conn: Deno.Conn, work: () => Promise<void>) => {
    open.add(conn);
    const task = work()
      .catch((error) => onError(`control connection failed: ${error}`))
      .finally(() => {
        open.delete(conn);
        try {
          conn.close();
        } catch {
          // already closed by shutdown
        }
        tasks.delete(task);
      });
    tasks.add(task);
  };

  /** Serves one socket with its own slots: a full group socket leaves root's untouched. */
  const acceptLoop = async (listener: Deno.Listener, maxClients: number) => {
    let mine = 0;
    while (!shutdown.signal.aborted) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (shutdown.signal.aborted) return;
        // EMFILE and friends: keep the server alive and try again shortly.
        onError(`control socket accept failed: ${error instanceof Error ? error.message : error}`);
        await delay(ACCEPT_RETRY_MS, shutdown.signal);
        continue;
      }
      if (mine >= maxClients) {
        track(conn, () => rejectBusy(conn, context, maxClients));
        continue;
      }
      mine++;
      serving++;
      track(conn, async () => {
        try {
          await serveConnection(conn, context);
        } finally {
          mine--;
          serving--;
        }
      });
    }
  };
  const loops = sockets.map(({ bound, maxClients }) => acceptLoop(bound.listener, maxClients));

  let closed: Promise<void> | undefined;
  return {
    path,
    rootPath,
    get clients() {
      return serving;
    },
    close() {
      closed ??= (async () => {
        shutdown.abort();
        for (const { bound } of sockets) bound.listener.close();
        for (const conn of open) {
          try {
            conn.close();
          } catch {
            // closed concurrently
          }
        }
        await Promise.allSettled(loops);
        await Promise.allSettled([...tasks]);
        for (const { path, bound } of sockets) await removeControlSocket(path, bound.identity);
      })();
      return closed;
    },
  };
}
