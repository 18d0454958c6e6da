/**
 * Short TCP connections for tests, run as a subprocess inside a namespace (and cgroup):
 *   sink <port>                       accept forever; read each connection to EOF, then close
 *   send <host:port,...> <n> <bytes> [gapMs]
 *                                     n connections, round-robin over the targets, one at a time:
 *                                     write `bytes`, half-close, wait for the peer's close; then
 *                                     wait gapMs (default 0) before the next
 * `send` prints one JSON line: {"connections": n, "failed": k, "ms": elapsed}.
 */

async function sink(port: number): Promise<void> {
  const listener = Deno.listen({ hostname: "0.0.0.0", port });
  for await (const conn of listener) {
    (async () => {
      const buf = new Uint8Array(64 * 1024);
      try {
        while ((await conn.read(buf)) !== null) {
          // discard
        }
      } catch {
        // reset by the peer: nothing to do
      } finally {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    })();
  }
}

async function sendOne(target: string, payload: Uint8Array): Promise<void> {
  const [hostname, port] = target.split(":");
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    let off = 0;
    while (off < payload.length) off += await conn.write(payload.subarray(off));
    await conn.closeWrite();
    const buf = new Uint8Array(1024);
    while ((await conn.read(buf)) !== null) {
      // wait for the sink's close
    }
  } finally {
    conn.close();
  }
}

async function send(targets: string[], n: number, bytes: number, gapMs = 0): Promise<void> {
  const payload = new Uint8Array(bytes).fill(0x5a);
  const start = Date.now();
  let failed = 0;
  for (let i = 0; i < n; i++) {
    try {
      await sendOne(targets[i % targets.length], payload);
    } catch {
      failed++;
    }
    if (gapMs > 0 && i < n - 1) await new Promise((r) => setTimeout(r, gapMs));
  }
  console.log(JSON.stringify({ connections: n, failed, ms: Date.now() - start }));
}

if (import.meta.main) {
  const [mode, ...args] = Deno.args;
  if (mode === "sink") await sink(Number(args[0]));
  else if (mode === "send") {
    await send(args[0].split(","), Number(args[1]), Number(args[2]), Number(args[3] ?? 0));
  } else {
    console.error("usage: tcp_traffic.ts sink <port> | send <host:port,...> <n> <bytes> [gapMs]");
    Deno.exit(2);
  }
}
