/**
 * The control socket for real: a server on a UNIX socket in a temp directory with a fake
 * provider, raw clients that misbehave, the query client, the CLI as a subprocess (also as user
 * nobody, for permission errors) and the loopback metrics endpoint.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { QUERY_EXIT, runQuery } from "../../src/cli/query.ts";
import { requestControl } from "../../src/daemon/control/client.ts";
import type { ControlLimits } from "../../src/daemon/control/limits.ts";
import {
  ControlError,
  type ControlResponse,
  parseResponseLine,
  VERB_NAMES,
} from "../../src/daemon/control/protocol.ts";
import type { ControlProvider } from "../../src/daemon/control/provider.ts";
import { type ControlServer, startControlServer } from "../../src/daemon/control/server.ts";
import { ControlSocketError } from "../../src/daemon/control/socket_file.ts";
import {
  MetricsListenError,
  type MetricsSnapshot,
  renderMetrics,
  startMetricsServer,
} from "../../src/daemon/metrics.ts";
import { familiesByName as parseOpenMetrics } from "../support/openmetrics.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const DENO = `${REPO}node_modules/.bin/deno`;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Fixtures

const NASTY = 'na"me\\with\nnewline\ttab\u0001';

const SNAPSHOT: MetricsSnapshot = {
  tunables: [{ sysctl: "net.ipv4.tcp_rmem", values: [4096, 131072, 6291456], changes: 1 }],
  scenarios: [{ tuner: "tcp_buffer", scenario: NASTY, count: 2 }],
  events: [{ tuner: "tcp_buffer", seen: 10, dropped: 0 }],
  hooks: [{ tuner: "tcp_buffer", hook: "tcp/tcp_probe", kind: "tracepoint", attached: true }],
  process: { residentBytes: 1 << 20, cpuSeconds: 0.5 },
};

function fakeProvider(): ControlProvider {
  return {
    tuners: () => [
      { name: "tcp_buffer", state: "active", reason: "" },
      { name: "neigh_table", state: "unavailable", reason: "no hook for neigh_create" },
    ],
    tunables: () => [{
      tuner: "tcp_buffer",
      name: "net.ipv4.tcp_rmem",
      kind: "sysctl",
      type: "integer",
      values: [4096, 131072, 6291456],
      managed: true,
      overridden: false,
    }, {
      tuner: "weird",
      name: NASTY,
      kind: "other",
      type: "string",
      values: [NASTY],
      managed: false,
      overridden: true,
    }],
    status: () => [
      { tuner: "tcp_buffer", name: "net.ipv4.tcp_rmem", values: [4096, 131072, 6291456] },
      { tuner: "weird", name: NASTY, values: [NASTY] },
    ],
    summary: () => ({ since: "2025-01-01T00:00:00Z", scenarios: [], changes: [] }),
    rollback: () => [{
      tuner: "tcp_buffer",
      sysctl: "net.ipv4.tcp_rmem",
      original: [4096, 131072, 6291456],
      current: [4096, 131072, 7864320],
    }],
    enable: (target) => ({ target, kind: "tuner", state: "active", changed: true, message: "ok" }),
    disable: (target) => {
      if (target !== "tcp_buffer") {
        throw new ControlError("not-found", `no tuner or sysctl named '${target}'`);
      }
      return { target, kind: "tuner", state: "disabled", changed: true, message: "disabled" };
    },
    metrics: () => SNAPSHOT,
  };
}

const EXPECTED_STATUS = {
  daemon: null, // the fake models no daemon process
  tunables: JSON.parse(JSON.stringify(fakeProvider().status())),
};

async function withServer(
  options: {
    limits?: Partial<ControlLimits>;
    group?: string;
    path?: string;
    provider?: ControlProvider;
  },
  body: (server: ControlServer, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bpfpilot-ctl-" });
  await Deno.chmod(dir, 0o755); // lets the "nobody" tests reach the socket
  const errors: string[] = [];
  let server: ControlServer | undefined;
  try {
    server = await startControlServer({
      provider: options.provider ?? fakeProvider(),
      path: options.path ?? `${dir}/control.sock`,
      group: options.group,
      limits: options.limits,
      onError: (m) => errors.push(m),
    });
    await body(server, dir);
  } finally {
    await server?.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function deadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** A client that can misbehave: raw bytes, half-close, reading a given number of lines. */
class RawClient {
  private pending = "";
  private eof = false;

  private constructor(readonly conn: Deno.UnixConn) {}

  static async open(path: string): Promise<RawClient> {
    return new RawClient(await Deno.connect({ transport: "unix", path }));
  }

  /** False if the server already closed (EPIPE/reset), which is fine for abusive clients. */
  async write(data: Uint8Array | string): Promise<boolean> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    try {
      let off = 0;
      while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
      return true;
    } catch {
      return false;
    }
  }

  async closeWrite(): Promise<void> {
    await this.conn.closeWrite().catch(() => {});
  }

  /** Reads until `count` answer lines or EOF; fails the test if the server stalls. */
  async readLines(count: number, ms = 3000): Promise<{ lines: string[]; eof: boolean }> {
    const lines: string[] = [];
    const work = (async () => {
      const buffer = new Uint8Array(65536);
      while (lines.length < count) {
        const nl = this.pending.indexOf("\n");
        if (nl >= 0) {
          lines.push(this.pending.slice(0, nl));
          this.pending = this.pending.slice(nl + 1);
          continue;
        }
        if (this.eof) break;
        let n: number | null = null;
        try {
          n = await this.conn.read(buffer);
        } catch {
          n = null; // reset counts as closed
        }
        if (n === null) this.eof = true;
        else this.pending += decoder.decode(buffer.subarray(0, n), { stream: true });
      }
    })();
    await deadline(work, ms, `waiting for ${count} answer line(s)`);
    return { lines, eof: this.eof };
  }

  async expectClosed(ms = 3000): Promise<void> {
    const { lines, eof } = await this.readLines(Number.MAX_SAFE_INTEGER, ms);
    assert.ok(eof);
    assert.deepEqual(lines, [], "unexpected extra answers before close");
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

/** A socket file nobody listens on, as a killed daemon leaves it. */
async function makeStaleSocket(path: string): Promise<void> {
  // Deno unlinks a socket path when its listener closes, so bind elsewhere and move it first.
  const bindPath = `${path}.tmp`;
  const listener = Deno.listen({ transport: "unix", path: bindPath });
  await Deno.rename(bindPath, path);
  listener.close();
  assert.ok((await Deno.lstat(path)).isSocket);
}

async function ask(path: string, line: string): Promise<ControlResponse> {
  const client = await RawClient.open(path);
  try {
    await client.write(line);
    const { lines } = await client.readLines(1);
    assert.equal(lines.length, 1, `no answer to ${JSON.stringify(line)}`);
    return parseResponseLine(lines[0]);
  } finally {
    client.close();
  }
}

function codeOf(response: ControlResponse): string {
  return response.ok ? "ok" : response.error.code;
}

async function assertStatusWorks(path: string): Promise<void> {
  const response = await ask(path, '{"v":1,"verb":"status","args":{}}\n');
  assert.ok(response.ok, JSON.stringify(response));
  assert.deepEqual(response.data, EXPECTED_STATUS);
}

// ---------------------------------------------------------------------------------------------
// Socket file

Deno.test("control socket: mode 0600, owned by root, only the socket left behind, removed on close", async () => {
  await withServer({}, async (server, dir) => {
    const info = await Deno.lstat(server.path);
    assert.ok(info.isSocket);
    assert.equal(info.mode! & 0o777, 0o600);
    assert.equal(info.uid, Deno.uid());
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["control.sock"]); // the private bind directory is gone
    await server.close();
    await assert.rejects(() => Deno.lstat(server.path), Deno.errors.NotFound);
    await server.close(); // idempotent
  });
});

Deno.test("control socket: the server opens no TCP/UDP listener", async () => {
  await withServer({}, async () => {
    const ours = new Set<string>();
    for await (const fd of Deno.readDir("/proc/self/fd")) {
      const target = await Deno.readLink(`/proc/self/fd/${fd.name}`).catch(() => "");
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m) ours.add(m[1]);
    }
    assert.ok(ours.size > 0, "expected at least the UNIX listener socket");
    for (const table of ["tcp", "tcp6", "udp", "udp6"]) {
      const text = await Deno.readTextFile(`/proc/net/${table}`);
      for (const row of text.split("\n").slice(1)) {
        const cols = row.trim().split(/\s+/);
        if (cols.length > 9) assert.ok(!ours.has(cols[9]), `${table} socket ${cols[9]} is ours`);
      }
    }
  });
});

Deno.test("control socket: a group makes it 0660 and group-owned", async () => {
  await withServer({ group: "daemon" }, async (server) => {
    const info = await Deno.lstat(server.path);
    assert.equal(info.mode! & 0o777, 0o660);
    const line = (await Deno.readTextFile("/etc/group")).split("\n")
      .find((l) => l.startsWith("daemon:"));
    assert.equal(info.gid, Number(line?.split(":")[2]));
  });
});

Deno.test("control socket: with a group, root gets its own 0600 socket with slots of its own", async () => {
  await withServer(
    { group: "nogroup", limits: { maxClients: 1, rootClients: 1 } },
    async (server, dir) => {
      assert.equal(server.rootPath, `${dir}/control.root.sock`);
      const info = await Deno.lstat(server.rootPath!);
      assert.ok(info.isSocket);
      assert.equal(info.mode! & 0o777, 0o600);
      assert.equal(info.uid, 0);
      const held = await RawClient.open(server.path);
      try {
        await held.write("help\n");
        await held.readLines(1);
        // the group socket is full...
        const busy = await ask(server.path, '{"v":1,"verb":"status","args":{}}\n');
        assert.equal(codeOf(busy), "busy");
        // ...root's socket still serves, and root's client goes there without being told
        await assertStatusWorks(server.rootPath!);
        await deadline(
          (async () => {
            while (server.clients > 1) await new Promise((r) => setTimeout(r, 10));
          })(),
          2000,
          "root's client to leave",
        );
        const answer = await requestControl({ verb: "status" }, {
          socketPath: server.path,
          busyRetries: 0,
        });
        assert.ok(answer.ok, JSON.stringify(answer));
      } finally {
        held.close();
      }
      await server.close();
      await assert.rejects(() => Deno.lstat(server.rootPath!), Deno.errors.NotFound);
    },
  );
  await withServer({}, async (server, dir) => {
    assert.equal(server.rootPath, null); // 0600 already: the one socket is root's
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["control.sock"]);
  });
});

Deno.test("query client: retries on busy, then says clearly that the slots are taken", async () => {
  await withServer({ limits: { maxClients: 1 } }, async (server) => {
    const held = await RawClient.open(server.path);
    await held.write("help\n");
    await held.readLines(1);
    // the slot frees while the client backs off: a retry gets through
    setTimeout(() => held.close(), 100);
    const later = await requestControl({ verb: "status" }, { socketPath: server.path });
    assert.ok(later.ok, JSON.stringify(later));
    await deadline(
      (async () => {
        while (server.clients > 0) await new Promise((r) => setTimeout(r, 10));
      })(),
      2000,
      "clients to drain",
    );
    const again = await RawClient.open(server.path);
    try {
      await again.write("help\n");
      assert.equal(codeOf(parseResponseLine((await again.readLines(1)).lines[0])), "ok");
      const busy = await requestControl({ verb: "status" }, {
        socketPath: server.path,
        busyRetries: 2,
      });
      assert.ok(!busy.ok);
      assert.equal(busy.error.code, "busy");
      assert.match(
        busy.error.message,
        /too many control clients \(limit 1\), still after 3 attempts over \d+\.\d s: other clients hold every connection; try again later/,
      );
    } finally {
      again.close();
    }
  });
});

Deno.test("control socket: missing directory is created 0755; unknown group is refused", async () => {
  await assert.rejects(
    () => startControlServer({ provider: fakeProvider(), path: `/tmp/${"d".repeat(120)}.sock` }),
    (e: unknown) => e instanceof ControlSocketError && /is too long/.test(e.message),
  );
  const dir = await Deno.makeTempDir({ prefix: "bpfpilot-ctl-" });
  try {
    const server = await startControlServer({
      provider: fakeProvider(),
      path: `${dir}/run/bpfpilot/control.sock`,
    });
    try {
      assert.equal((await Deno.stat(`${dir}/run/bpfpilot`)).mode! & 0o777, 0o755);
      await assertStatusWorks(server.path);
    } finally {
      await server.close();
    }
    await assert.rejects(
      () =>
        startControlServer({
          provider: fakeProvider(),
          path: `${dir}/x.sock`,
          group: "no-such-group-bpfpilot",
        }),
      (e: unknown) =>
        e instanceof ControlSocketError &&
        /group 'no-such-group-bpfpilot' does not exist; create it/.test(e.message),
    );
    await assert.rejects(() => Deno.lstat(`${dir}/x.sock`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("control socket: stale socket replaced, live one refused, other files untouched", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfpilot-ctl-" });
  try {
    const path = `${dir}/control.sock`;
    await makeStaleSocket(path);
    const first = await startControlServer({ provider: fakeProvider(), path });
    try {
      await assertStatusWorks(path);
      await assert.rejects(
        () => startControlServer({ provider: fakeProvider(), path }),
        (e: unknown) =>
          e instanceof ControlSocketError &&
          /another bpfpilot daemon is already running/.test(e.message),
      );
      await assertStatusWorks(path); // the refused second start did not break the first
    } finally {
      await first.close();
    }

    const file = `${dir}/not-a-socket`;
    await Deno.writeTextFile(file, "precious");
    await assert.rejects(
      () => startControlServer({ provider: fakeProvider(), path: file }),
      (e: unknown) => e instanceof ControlSocketError && /is not a socket/.test(e.message),
    );
    assert.equal(await Deno.readTextFile(file), "precious");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Verbs

Deno.test("control verbs: every verb answers a valid v1 envelope, JSON and bare forms", async () => {
  await withServer({}, async (server) => {
    for (const verb of VERB_NAMES) {
      const target = verb === "enable" || verb === "disable" ? "tcp_buffer" : undefined;
      const json = JSON.stringify({ v: 1, verb, args: target ? { target } : {} });
      const bare = target ? `${verb} ${target}` : verb;
      const viaJson = await ask(server.path, `${json}\n`);
      const viaBare = await ask(server.path, `${bare}\n`);
      assert.ok(viaJson.ok, `${verb}: ${JSON.stringify(viaJson)}`);
      assert.deepEqual(viaBare, viaJson, verb);
    }
    assert.equal(codeOf(await ask(server.path, "disable ghost\n")), "not-found");
    assert.equal(codeOf(await ask(server.path, "frobnicate\n")), "unknown-verb");
    // bpftune's client: verb + NUL, no newline, then waits for the answer.
    const client = await RawClient.open(server.path);
    try {
      await client.write("tuners\0");
      await client.closeWrite();
      const { lines } = await client.readLines(1);
      assert.equal(codeOf(parseResponseLine(lines[0])), "ok");
    } finally {
      client.close();
    }
  });
});

Deno.test("control verbs: jtunables/jstatus are valid JSON with hostile strings escaped", async () => {
  await withServer({}, async (server) => {
    const jstatus = await ask(server.path, "jstatus\n");
    assert.ok(jstatus.ok);
    assert.deepEqual(jstatus.data, {
      tcp_buffer: { "net.ipv4.tcp_rmem": [4096, 131072, 6291456] },
      weird: { [NASTY]: NASTY },
    });
    const jtunables = await ask(server.path, "jtunables\n");
    assert.ok(jtunables.ok);
    assert.deepEqual(jtunables.data, {
      tcp_buffer: { "net.ipv4.tcp_rmem": { type: "integer", num_values: 3 } },
      weird: { [NASTY]: { type: "string", num_values: 1 } },
    });
    const metrics = await ask(server.path, "metrics\n");
    assert.ok(metrics.ok);
    const families = parseOpenMetrics(metrics.data as string);
    assert.equal(families.get("bpfpilot_scenario")?.samples[0].labels.scenario, NASTY);
  });
});

// ---------------------------------------------------------------------------------------------
// Limits

Deno.test("control limits: over-long line → request-too-large and close", async () => {
  await withServer({}, async (server) => {
    const client = await RawClient.open(server.path);
    try {
      await client.write("x".repeat(5000) + "\n");
      const { lines, eof } = await client.readLines(2);
      assert.equal(lines.length, 1);
      assert.equal(codeOf(parseResponseLine(lines[0])), "request-too-large");
      assert.ok(eof);
    } finally {
      client.close();
    }
    // exactly at the limit is fine (4096 bytes of padding after a JSON request is still JSON)
    const padded = '{"v":1,"verb":"status"}'.padEnd(4096, " ");
    assert.equal(codeOf(await ask(server.path, padded + "\n")), "ok");
  });
});

Deno.test("control limits: idle client gets a timeout answer and is closed", async () => {
  await withServer({ limits: { idleTimeoutMs: 200 } }, async (server) => {
    const client = await RawClient.open(server.path);
    try {
      const started = Date.now();
      const { lines, eof } = await client.readLines(2);
      assert.equal(codeOf(parseResponseLine(lines[0])), "timeout");
      assert.ok(eof);
      assert.ok(Date.now() - started >= 150);
    } finally {
      client.close();
    }
  });
});

Deno.test("control limits: slow writer in time is served, slowloris is cut off", async () => {
  await withServer({ limits: { idleTimeoutMs: 400 } }, async (server) => {
    const slow = await RawClient.open(server.path);
    try {
      for (const part of ["st", "at", "us\n"]) {
        await slow.write(part);
        await new Promise((r) => setTimeout(r, 50));
      }
      const { lines } = await slow.readLines(1);
      assert.equal(codeOf(parseResponseLine(lines[0])), "ok");
    } finally {
      slow.close();
    }
    const loris = await RawClient.open(server.path);
    try {
      let alive = true;
      for (let i = 0; i < 12 && alive; i++) {
        alive = await loris.write("s");
        // the daemon keeps serving others meanwhile
        if (i === 3) await assertStatusWorks(server.path);
        await new Promise((r) => setTimeout(r, 60));
      }
      const { lines, eof } = await loris.readLines(2);
      assert.equal(codeOf(parseResponseLine(lines[0])), "timeout");
      assert.ok(eof);
    } finally {
      loris.close();
    }
  });
});

Deno.test("control limits: clients over the limit get busy; pipelined requests all answered", async () => {
  await withServer({ limits: { maxClients: 2, idleTimeoutMs: 2000 } }, async (server) => {
    const held = [await RawClient.open(server.path), await RawClient.open(server.path)];
    try {
      await held[0].write("help\n"); // make sure both are accepted and being served
      await held[0].readLines(1);
      await held[1].write("help\n");
      await held[1].readLines(1);
      const extra = await RawClient.open(server.path);
      try {
        const { lines, eof } = await extra.readLines(2);
        const busy = parseResponseLine(lines[0]);
        assert.equal(codeOf(busy), "busy");
        assert.match(!busy.ok ? busy.error.message : "", /limit 2/);
        assert.ok(eof);
      } finally {
        extra.close();
      }
      // pipelining on an accepted connection: three requests in one write, three answers
      await held[0].write('status\nnope\n{"v":1,"verb":"tuners"}\n');
      const { lines } = await held[0].readLines(3);
      assert.deepEqual(lines.map((l) => codeOf(parseResponseLine(l))), [
        "ok",
        "unknown-verb",
        "ok",
      ]);
    } finally {
      held.forEach((c) => c.close());
    }
    // once they leave, service resumes
    await deadline(
      (async () => {
        while (server.clients > 0) await new Promise((r) => setTimeout(r, 10));
      })(),
      2000,
      "clients to drain",
    );
    await assertStatusWorks(server.path);
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzz

/** Deterministic PRNG (mulberry32) so a failing run can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VALID = VERB_NAMES.map((verb) =>
  JSON.stringify({
    v: 1,
    verb,
    args: verb === "enable" || verb === "disable" ? { target: "tcp_buffer" } : {},
  })
);

Deno.test("control fuzz: thousands of malformed requests, server keeps answering correctly", async () => {
  const seed = Number(Deno.env.get("BPFPILOT_FUZZ_SEED") ?? Date.now() % 1e9);
  const random = prng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)];
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
  const MAX_BAD = 16;

  await withServer({ limits: { idleTimeoutMs: 300 } }, async (server) => {
    const path = server.path;
    const counts: Record<string, number> = {};

    /** One abusive session; returns after checking whatever the server answered. */
    async function session(kind: number): Promise<void> {
      const client = await RawClient.open(path);
      try {
        switch (kind) {
          case 0: { // random bytes, newline-terminated: one answer per line (until the bad cap)
            const payload = bytes(1 + int(600));
            const data = new Uint8Array([...payload, 0x0a]);
            const expected = Math.min(data.filter((b) => b === 0x0a).length, MAX_BAD);
            await client.write(data);
            const { lines } = await client.readLines(expected);
            assert.equal(lines.length, expected, `seed ${seed}: answers for random bytes`);
            for (const l of lines) parseResponseLine(l);
            break;
          }
          case 1: { // huge line
            await client.write(encoder.encode("a".repeat(4097 + int(30000)) + "\n"));
            const { lines, eof } = await client.readLines(2);
            assert.equal(codeOf(parseResponseLine(lines[0])), "request-too-large");
            assert.ok(eof);
            break;
          }
          case 2: { // broken JSON: truncated or with a flipped character
            const valid = pick(VALID);
            const broken = random() < 0.5
              ? valid.slice(0, 1 + int(valid.length - 2))
              : valid.slice(0, int(valid.length)) + pick(['"', "}", "{", ",", "\\", "\u0000"]) +
                valid.slice(int(valid.length));
            await client.write(broken.replace(/\n/g, "") + "\n");
            const { lines } = await client.readLines(1);
            parseResponseLine(lines[0]); // any envelope: mutations can still be valid requests
            break;
          }
          case 3: { // invalid UTF-8
            const bad = pick([[0xc3], [0xff], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]]);
            await client.write(new Uint8Array([0x73, ...bad, 0x0a]));
            const { lines } = await client.readLines(1);
            assert.equal(codeOf(parseResponseLine(lines[0])), "bad-encoding");
            break;
          }
          case 4: // partial line, then vanish
            await client.write(pick(VALID).slice(0, 1 + int(10)));
            break;
          case 5: { // partial valid request, then half-close: still answered
            const verb = pick(["status", "tuners", "help"]);
            await client.write(verb);
            await client.closeWrite();
            const { lines, eof } = await client.readLines(2);
            assert.equal(codeOf(parseResponseLine(lines[0])), "ok");
            assert.ok(eof);
            break;
          }
          case 6: // connect and leave
            break;
          case 7: { // a valid request among the noise gets the right answer
            await client.write('{"v":1,"verb":"status","args":{}}\n');
            const { lines } = await client.readLines(1);
            const response = parseResponseLine(lines[0]);
            assert.ok(response.ok);
            assert.deepEqual(response.data, EXPECTED_STATUS);
            break;
          }
          case 8: { // many garbage lines: cut off after the bad-request cap
            const junk = Array.from({ length: MAX_BAD + 5 }, () => `junk${int(1000)}`).join("\n");
            await client.write(junk + "\n");
            const { lines, eof } = await client.readLines(MAX_BAD + 5);
            assert.equal(lines.length, MAX_BAD);
            assert.ok(eof);
            break;
          }
          default: { // slow writer that never finishes: timed out (rare, it costs 300 ms)
            await client.write("sta");
            const { lines, eof } = await client.readLines(2);
            assert.equal(codeOf(parseResponseLine(lines[0])), "timeout");
            assert.ok(eof);
          }
        }
      } finally {
        client.close();
      }
    }

    const TOTAL = 3000;
    let next = 0;
    const worker = async () => {
      while (next < TOTAL) {
        next++;
        const kind = random() < 0.005 ? 9 : int(9);
        counts[kind] = (counts[kind] ?? 0) + 1;
        await session(kind);
      }
    };
    await deadline(
      Promise.all(Array.from({ length: 24 }, worker)),
      120_000,
      `fuzz (seed ${seed})`,
    );
    assert.ok(Object.keys(counts).length >= 9, `not every case ran: ${JSON.stringify(counts)}`);

    await deadline(
      (async () => {
        while (server.clients > 0) await new Promise((r) => setTimeout(r, 10));
      })(),
      3000,
      "clients to drain after fuzz",
    );
    await assertStatusWorks(path);
    const reply = await requestControl({ verb: "jstatus" }, { socketPath: path });
    assert.ok(reply.ok);
  });
});

Deno.test("control concurrency: 100 simultaneous clients all get the right answer", async () => {
  await withServer({}, async (server) => {
    const replies = await deadline(
      Promise.all(
        Array.from(
          { length: 100 },
          () => requestControl({ verb: "status" }, { socketPath: server.path }),
        ),
      ),
      20_000,
      "100 clients",
    );
    for (const reply of replies) {
      assert.ok(reply.ok, JSON.stringify(reply));
      assert.deepEqual(reply.data, EXPECTED_STATUS);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Client errors and the CLI

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) };
}

Deno.test("query client: clear errors when no daemon is running", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfpilot-ctl-" });
  try {
    const missing = `${dir}/control.sock`;
    let io = capture();
    assert.equal(
      await runQuery("status", undefined, { socket: missing, ...io }),
      QUERY_EXIT.notRunning,
    );
    assert.deepEqual(io.err, [
      `bpfpilot: bpfpilot daemon is not running (no control socket at ${missing}); start it ` +
      "with `systemctl start bpfpilot` or `bpfpilot run`",
    ]);
    assert.deepEqual(io.out, []);

    io = capture();
    const noDir = `${dir}/absent/control.sock`;
    assert.equal(
      await runQuery("tuners", undefined, { socket: noDir, ...io }),
      QUERY_EXIT.notRunning,
    );
    assert.match(io.err[0], /daemon is not running \(no control socket at /);

    // Left over by a daemon that died: the file exists but nobody listens.
    await makeStaleSocket(missing);
    io = capture();
    assert.equal(
      await runQuery("status", undefined, { socket: missing, ...io }),
      QUERY_EXIT.notRunning,
    );
    assert.match(
      io.err[0],
      /daemon is not running \(control socket .* refuses connections\); start it/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("query client: daemon errors and answers map to exit codes", async () => {
  await withServer({}, async (server) => {
    let io = capture();
    assert.equal(
      await runQuery("status", undefined, { socket: server.path, ...io }),
      QUERY_EXIT.ok,
    );
    assert.match(
      io.out[0],
      /^TUNER\s+SYSCTL\s+VALUES\ntcp_buffer\s+net\.ipv4\.tcp_rmem\s+4096 131072 6291456/,
    );
    assert.ok(!io.out[0].includes("\u0001"), "control character reached the terminal");

    io = capture();
    assert.equal(
      await runQuery("disable", "ghost", { socket: server.path, ...io }),
      QUERY_EXIT.failed,
    );
    assert.match(io.err[0], /the daemon refused 'disable': no tuner or sysctl named 'ghost'/);

    io = capture();
    assert.equal(
      await runQuery("enable", "bad;name", { socket: server.path, json: true, ...io }),
      QUERY_EXIT.usage,
    );
    assert.equal(JSON.parse(io.out[0]).error.code, "bad-args");

    io = capture();
    assert.equal(
      await runQuery("status", undefined, { socket: server.path, json: true, ...io }),
      0,
    );
    assert.deepEqual(JSON.parse(io.out[0]), EXPECTED_STATUS);
  });
});

Deno.test("query --netns: sent only when given, checked on both ends; a note under the default", async () => {
  // What the daemon was asked for; rows in a namespace "blue" besides the host's.
  const asked: (string | undefined)[] = [];
  const base = fakeProvider();
  const provider: ControlProvider = {
    ...base,
    tunables: (netns) => (asked.push(netns), []),
    status: (netns) => {
      asked.push(netns);
      return [
        { tuner: "tcp_buffer", name: "net.ipv4.tcp_rmem", values: [1, 2, 3] },
        { tuner: "tcp_buffer", name: "net.ipv4.tcp_rmem", values: [4, 5, 6], netns: "blue" },
      ];
    },
  };
  await withServer({ provider }, async (server) => {
    const run = async (verb: string, netns?: string, json = false) => {
      const io = capture();
      const code = await runQuery(verb, undefined, { socket: server.path, netns, json, ...io });
      return { code, out: io.out.join("\n"), err: io.err.join("\n") };
    };
    let r = await run("status");
    assert.equal(r.code, QUERY_EXIT.ok, r.err);
    assert.match(
      r.out,
      /\ntcp_buffer\s+net\.ipv4\.tcp_rmem\s+blue\s+4 5 6\n\nOther namespaces: only /,
    );
    assert.match(r.out, /--netns all shows every tunable of each/);
    r = await run("status", "all");
    assert.doesNotMatch(r.out, /Other namespaces/, "asked for: no note");
    r = await run("status", undefined, true);
    assert.equal(JSON.parse(r.out).tunables.length, 2, "JSON: the answer alone");
    assert.equal((await run("tunables", "blue")).code, QUERY_EXIT.ok);
    assert.deepEqual(asked, [undefined, "all", undefined, "blue"]);

    // The bare form's second word, and JSON's args.netns.
    assert.equal(codeOf(await ask(server.path, "status ns:4026532000\n")), "ok");
    assert.equal(
      codeOf(await ask(server.path, '{"v":1,"verb":"tunables","args":{"netns":"global"}}\n')),
      "ok",
    );
    assert.deepEqual(asked.slice(4), ["ns:4026532000", "global"]);
    for (
      const line of [
        "status a/b",
        '{"v":1,"verb":"status","args":{"netns":7}}',
        '{"v":1,"verb":"tuners","args":{"netns":"all"}}',
        "summary all",
      ]
    ) {
      assert.equal(codeOf(await ask(server.path, `${line}\n`)), "bad-args", line);
    }

    // Garbage never reaches the socket: a usage error naming what --netns takes.
    for (
      const [verb, netns, pattern] of [
        [
          "status",
          "../etc",
          /--netns '\.\.\/etc': expected changed, all, global, a namespace's name/,
        ],
        ["tunables", "", /expected changed, all, global/],
        ["summary", "all", /--netns 'all': only tunables and status take it/],
      ] as const
    ) {
      r = await run(verb, netns, true);
      assert.equal(r.code, QUERY_EXIT.usage, r.err);
      assert.match(r.err, pattern);
      assert.equal(JSON.parse(r.out).error.code, "usage");
    }
    const positional = capture();
    assert.equal(
      await runQuery("status", "all", { socket: server.path, ...positional }),
      QUERY_EXIT.usage,
    );
    assert.match(
      positional.err[0],
      /'status' takes no argument \(got 'all'\); to choose namespaces: --netns all/,
    );
    assert.equal(asked.length, 6, "none of the refused ones was asked");

    const cli = await runCli(["tunables", "--netns", "a b", "--socket", server.path]);
    assert.equal(cli.code, 2);
    assert.match(
      cli.stderr,
      /option '--netns <which>' argument 'a b' is invalid\. expected changed/,
    );
    const help = await runCli(["--help"]);
    assert.match(help.stdout, /--netns <which>/);
    assert.match(help.stdout, /Namespaces \(--netns <which>, for tunables and status/);
    assert.match(help.stdout, /\n\s+all\s+every tunable of every namespace bpfpilot knows/);
  });
});

async function runCli(
  args: string[],
  options: { asNobody?: boolean; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  // The commander command as the CLI wires it: CommanderError → exit 2.
  const code = `import { CommanderError } from "@commander-js/extra-typings";
import { queryCommand } from "./src/cli/query.ts";
try { await queryCommand().parseAsync(Deno.args, { from: "user" }); }
catch (e) { if (e instanceof CommanderError) Deno.exit(e.exitCode === 0 ? 0 : 2); throw e; }`;
  const argv = ["eval", "--quiet", code, "--", ...args];
  const command = options.asNobody
    ? new Deno.Command("setpriv", {
      args: ["--reuid=65534", "--regid=65534", "--clear-groups", DENO, ...argv],
      cwd: REPO,
      env: options.env,
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(DENO, { args: argv, cwd: REPO, stdout: "piped", stderr: "piped" });
  const result = await command.output();
  return {
    code: result.code,
    stdout: decoder.decode(result.stdout),
    stderr: decoder.decode(result.stderr),
  };
}

Deno.test("bpfpilot query (subprocess): tables, --json, exit codes, help", async () => {
  await withServer({}, async (server) => {
    const table = await runCli(["tuners", "--socket", server.path]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^TUNER\s+STATE\s+REASON\n/);
    assert.match(table.stdout, /neigh_table\s+unavailable\s+no hook for neigh_create/);

    const json = await runCli(["rollback", "--json", "--socket", server.path]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(
      JSON.parse(json.stdout)[0].command,
      'sysctl -w net.ipv4.tcp_rmem="4096 131072 6291456"',
    );

    const usage = await runCli(["status", "--timeout", "soon", "--socket", server.path]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--timeout/);

    const help = await runCli(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Exit status \(the same with --json\):\n\s+0\s+success/);
    assert.match(help.stdout, /3\s+the daemon is not running/);
  });
});

Deno.test("bpfpilot query as an unprivileged user: permission errors name the fix", async () => {
  const denoDir = await Deno.makeTempDir({ prefix: "bpfpilot-denodir-" });
  await Deno.chmod(denoDir, 0o777);
  const env = { DENO_DIR: denoDir, HOME: denoDir, NO_COLOR: "1" };
  try {
    await withServer({}, async (server) => {
      const denied = await runCli(["status", "--socket", server.path], { asNobody: true, env });
      assert.equal(denied.code, QUERY_EXIT.permission, denied.stderr);
      assert.match(
        denied.stderr,
        /permission denied on the bpfpilot control socket .*: querying the daemon needs root \(try sudo\)/,
      );
    });
    await withServer({ group: "daemon" }, async (server) => {
      const denied = await runCli(["status", "--socket", server.path], { asNobody: true, env });
      assert.equal(denied.code, QUERY_EXIT.permission, denied.stderr);
      assert.match(denied.stderr, /needs root or membership in group daemon/);
    });
    await withServer({ group: "nogroup" }, async (server) => {
      // nobody's own group: the 0660 socket lets it in
      const allowed = await runCli(["status", "--json", "--socket", server.path], {
        asNobody: true,
        env,
      });
      assert.equal(allowed.code, 0, allowed.stderr);
      assert.deepEqual(JSON.parse(allowed.stdout), EXPECTED_STATUS);
    });
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Metrics endpoint

Deno.test("metrics endpoint: serves OpenMetrics on 127.0.0.1 only", async () => {
  let renders = 0;
  const server = startMetricsServer("127.0.0.1:0", () => {
    renders++;
    return renderMetrics(SNAPSHOT);
  });
  try {
    assert.equal(server.hostname, "127.0.0.1");
    assert.ok(server.port > 0);
    const base = `http://127.0.0.1:${server.port}`;
    const response = await fetch(`${base}/metrics`);
    assert.equal(response.status, 200);
    assert.match(
      response.headers.get("content-type") ?? "",
      /^application\/openmetrics-text; version=1\.0\.0/,
    );
    const families = parseOpenMetrics(await response.text());
    assert.equal(families.get("bpfpilot_scenario")?.samples[0].labels.scenario, NASTY);
    assert.equal(renders, 1);

    const notFound = await fetch(`${base}/`);
    assert.equal(notFound.status, 404);
    await notFound.body?.cancel();
    const post = await fetch(`${base}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();

    assert.throws(
      () => startMetricsServer(`127.0.0.1:${server.port}`, () => ""),
      (e: unknown) => e instanceof MetricsListenError && /already in use/.test(e.message),
    );
    assert.throws(
      () => startMetricsServer("0.0.0.0:0", () => ""),
      (e: unknown) => e instanceof MetricsListenError && /non-loopback/.test(e.message),
    );
  } finally {
    await server.close();
  }
});

Deno.test("metrics endpoint: a failing render is a 500, the server stays up", async () => {
  const errors: string[] = [];
  let fail = true;
  const server = startMetricsServer("127.0.0.1:0", () => {
    if (fail) throw new Error("snapshot unavailable");
    return renderMetrics(SNAPSHOT);
  }, { onError: (m) => errors.push(m) });
  try {
    const url = `http://127.0.0.1:${server.port}/metrics`;
    const bad = await fetch(url);
    assert.equal(bad.status, 500);
    await bad.body?.cancel();
    assert.match(errors[0], /snapshot unavailable/);
    fail = false;
    const good = await fetch(url);
    assert.equal(good.status, 200);
    parseOpenMetrics(await good.text());
  } finally {
    await server.close();
  }
});
