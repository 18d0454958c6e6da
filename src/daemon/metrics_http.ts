/**
 * The metrics endpoint's HTTP side: a deliberately small HTTP/1.1 server on a TCP listener,
 * because the root daemon must survive whatever a local user sends it. Every connection answers
 * one request and closes; at most `maxConnections` are open (when full, the oldest that has not
 * sent a complete request yet is dropped for the new one, so idle connections cannot lock a
 * scraper out); each has `deadlineMs` to send its request and take the answer; a request head
 * is at most `maxHeadBytes`; a failing accept (e.g. out of file descriptors) is reported and
 * retried, never fatal; the exposition is rendered at most once per `cacheMs`.
 */
export interface HttpLimits {
  maxConnections: number;
  deadlineMs: number;
  maxHeadBytes: number;
  cacheMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxConnections: 64,
  deadlineMs: 2000,
  maxHeadBytes: 8192,
  cacheMs: 1000,
};

export const OPENMETRICS_CONTENT_TYPE =
  "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** Accept errors are reported at most this often (a flood must not flood the log). */
const ACCEPT_REPORT_MS = 10_000;
const ACCEPT_RETRY_MS = 100;
/** While shedding, a turn of I/O every this many accepts (see the accept loop). */
const YIELD_EVERY = 8;

interface Client {
  conn: Deno.Conn;
  /** Some bytes arrived: evicted only after those that sent nothing. */
  spoke: boolean;
  /** A complete request head arrived: it is being answered, never evicted. */
  answering: boolean;
}

export interface HttpEndpoint {
  readonly hostname: string;
  readonly port: number;
  /** Connections refused or evicted because the endpoint was full. */
  readonly shed: () => number;
  close(): Promise<void>;
}

function response(status: string, type: string, body: string, head: boolean, extra = ""): string {
  const length = new TextEncoder().encode(body).length;
  return `HTTP/1.1 ${status}\r\ncontent-type: ${type}\r\ncontent-length: ${length}\r\n` +
    `connection: close\r\n${extra}\r\n${head ? "" : body}`;
}

function plain(status: string, body: string, head = false, extra = ""): string {
  return response(status, "text/plain; charset=utf-8", body, head, extra);
}

/** The request line of a complete head, or null while the head is incomplete. */
export function requestLine(head: string): { method: string; path: string } | null {
  const end = head.indexOf("\r\n\r\n");
  const endLf = head.indexOf("\n\n");
  if (end < 0 && endLf < 0) return null;
  const first = head.slice(0, head.indexOf("\n")).replace(/\r$/, "");
  const m = /^([A-Z]{1,16}) (\S{1,2048}) HTTP\/1\.[01]$/.exec(first);
  if (!m) return { method: "", path: "" };
  return { method: m[1], path: m[2].replace(/[?#].*$/, "") };
}

/** The answer to one request (a whole HTTP/1.1 response, connection: close). */
async function answer(
  req: { method: string; path: string },
  exposition: () => Promise<string>,
  onError: (m: string) => void,
): Promise<string> {
  if (req.method === "") return plain("400 Bad Request", "malformed request\n");
  if (req.path !== "/metrics") {
    return plain("404 Not Found", "not found; metrics are served at /metrics\n");
  }
  const head = req.method === "HEAD";
  if (req.method !== "GET" && !head) {
    return plain(
      "405 Method Not Allowed",
      "only GET and HEAD are supported\n",
      false,
      "allow: GET, HEAD\r\n",
    );
  }
  try {
    return response("200 OK", OPENMETRICS_CONTENT_TYPE, await exposition(), head);
  } catch (error) {
    onError(`metrics rendering failed: ${error instanceof Error ? error.message : String(error)}`);
    return plain("500 Internal Server Error", "metrics rendering failed; see the bpfpilot log\n");
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

export function serveMetricsHttp(
  listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>,
  render: () => string | Promise<string>,
  onError: (message: string) => void,
  limits: HttpLimits = DEFAULT_HTTP_LIMITS,
): HttpEndpoint {
  const clients: Client[] = [];
  let closed = false;
  let shed = 0;
  let lastAcceptReport = -Infinity;
  let cache: { at: number; text: Promise<string> } | null = null;

  const exposition = (): Promise<string> => {
    const now = performance.now();
    if (cache && now - cache.at < limits.cacheMs) return cache.text;
    const text = Promise.resolve().then(render);
    cache = { at: now, text };
    text.catch(() => cache?.text === text && (cache = null));
    return text;
  };

  const drop = (c: Client) => {
    const i = clients.indexOf(c);
    if (i >= 0) clients.splice(i, 1);
    try {
      c.conn.close();
    } catch {
      // already closed (deadline or client gone)
    }
  };

  const serve = async (c: Client) => {
    const deadline = setTimeout(() => drop(c), limits.deadlineMs);
    try {
      const buf = new Uint8Array(limits.maxHeadBytes);
      let used = 0;
      let req: { method: string; path: string } | null = null;
      while (req === null) {
        if (used === buf.length) {
          await writeAll(
            c.conn,
            new TextEncoder().encode(
              plain("431 Request Header Fields Too Large", "request head too large\n"),
            ),
          );
          return;
        }
        const n = await c.conn.read(buf.subarray(used));
        if (n === null) return;
        used += n;
        c.spoke = true;
        req = requestLine(new TextDecoder().decode(buf.subarray(0, used)));
      }
      c.answering = true;
      await writeAll(c.conn, new TextEncoder().encode(await answer(req, exposition, onError)));
    } catch {
      // reset, deadline or eviction: nothing to answer
    } finally {
      clearTimeout(deadline);
      drop(c);
    }
  };

  const loop = (async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closed) break;
        const now = performance.now();
        if (now - lastAcceptReport >= ACCEPT_REPORT_MS) {
          lastAcceptReport = now;
          onError(
            `metrics endpoint: cannot accept a connection (${
              error instanceof Error ? error.message : String(error)
            }); still serving, retrying`,
          );
        }
        await new Promise((r) => setTimeout(r, ACCEPT_RETRY_MS));
        continue;
      }
      if (clients.length >= limits.maxConnections) {
        shed++;
        // The oldest that sent nothing, else the oldest not yet answered (a slow sender).
        const idle = clients.find((c) => !c.spoke && !c.answering) ??
          clients.find((c) => !c.answering);
        if (idle) drop(idle);
        else {
          try {
            conn.close();
          } catch {
            // gone
          }
        }
        // Let pending reads run before a newly accepted scraper could become the oldest: accepts
        // can complete without a turn of I/O, and a flood must not evict a request waiting to be
        // read. Eviction goes oldest first, so a turn every few accepts (far fewer than the cap)
        // is enough, and still drains a backlog of thousands in well under a second.
        if (shed % YIELD_EVERY === 0) {
          await new Promise((r) => setTimeout(r, 0));
        }
        if (!idle) continue;
      }
      const c: Client = { conn, spoke: false, answering: false };
      clients.push(c);
      serve(c);
    }
  })();

  const addr = listener.addr;
  return {
    hostname: addr.hostname,
    port: addr.port,
    shed: () => shed,
    async close() {
      closed = true;
      try {
        listener.close();
      } catch {
        // already closed
      }
      for (const c of [...clients]) drop(c);
      await loop;
    },
  };
}
