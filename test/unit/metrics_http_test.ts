import assert from "node:assert/strict";
import { requestLine, serveMetricsHttp } from "../../src/daemon/metrics_http.ts";

const LIMITS = { maxConnections: 4, deadlineMs: 300, maxHeadBytes: 256, cacheMs: 1000 };

async function withEndpoint(
  render: () => string,
  fn: (port: number, shed: () => number) => Promise<void>,
  errors: string[] = [],
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ep = serveMetricsHttp(listener, render, (m) => errors.push(m), LIMITS);
  try {
    await fn(ep.port, ep.shed);
  } finally {
    await ep.close();
  }
}

async function raw(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(request));
  let out = "";
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    out += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  return out;
}

Deno.test("metrics http: idle connections past the cap cannot lock a scraper out", async () => {
  await withEndpoint(() => "x_total 1\n# EOF\n", async (port, shed) => {
    const idle = await Promise.all(
      Array.from({ length: 20 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
    );
    await new Promise((r) => setTimeout(r, 50));
    const answer = await raw(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(answer, /# EOF\n$/);
    assert.ok(shed() >= 16, `shed ${shed()}`);
    for (const c of idle) c.close();
  });
});

Deno.test("metrics http: an idle connection is closed at the deadline", async () => {
  await withEndpoint(() => "# EOF\n", async (port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const t0 = performance.now();
    const n = await conn.read(new Uint8Array(16)).catch(() => null);
    const ms = performance.now() - t0;
    assert.equal(n, null);
    assert.ok(ms >= 250 && ms < 2000, `closed after ${ms} ms`);
    conn.close();
  });
});

Deno.test("metrics http: the exposition is cached, oversized heads and bad paths refused", async () => {
  let renders = 0;
  await withEndpoint(() => `r ${++renders}\n# EOF\n`, async (port) => {
    for (let i = 0; i < 10; i++) {
      assert.match(await raw(port, "GET /metrics HTTP/1.0\r\n\r\n"), /r 1\n# EOF\n$/);
    }
    assert.equal(renders, 1);
    assert.match(await raw(port, "GET /metrics HTTP/1.1\r\n" + "a".repeat(400)), /^HTTP\/1\.1 431/);
    assert.match(await raw(port, "GET / HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 404/);
    assert.match(await raw(port, "POST /metrics HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 405/);
    assert.match(await raw(port, "garbage\r\n\r\n"), /^HTTP\/1\.1 400/);
    const head = await raw(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert.match(head, /content-type: application\/openmetrics-text/);
    assert.ok(head.endsWith("\r\n\r\n"), "HEAD has no body");
  });
});

Deno.test("metrics http: a render failure is a 500 and a log line, not a crash", async () => {
  const errors: string[] = [];
  await withEndpoint(() => {
    throw new Error("boom");
  }, async (port) => {
    assert.match(await raw(port, "GET /metrics HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 500/);
  }, errors);
  assert.deepEqual(errors, ["metrics rendering failed: boom"]);
});

Deno.test("requestLine: complete heads only, path without query", () => {
  assert.equal(requestLine("GET /metrics HTTP/1.1\r\nHost: x\r\n"), null);
  assert.deepEqual(requestLine("GET /metrics?x=1 HTTP/1.1\r\n\r\n"), {
    method: "GET",
    path: "/metrics",
  });
  assert.deepEqual(requestLine("GET /metrics\r\n\r\n"), { method: "", path: "" });
});
