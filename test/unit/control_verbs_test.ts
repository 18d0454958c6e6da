import assert from "node:assert/strict";
import { answerLine, LineBuffer } from "../../src/daemon/control/connection.ts";
import { DEFAULT_CONTROL_LIMITS } from "../../src/daemon/control/limits.ts";
import { ControlError, VERB_NAMES } from "../../src/daemon/control/protocol.ts";
import type { ControlProvider } from "../../src/daemon/control/provider.ts";
import { rollbackCommand, runVerb } from "../../src/daemon/control/verbs.ts";

/** Records which provider methods ran and with what. */
function fakeProvider(overrides: Partial<ControlProvider> = {}) {
  const calls: string[] = [];
  const provider: ControlProvider = {
    tuners: () => [{ name: "tcp_buffer", state: "active", reason: "" }],
    tunables: () => [
      {
        tuner: "tcp_buffer",
        name: "net.ipv4.tcp_rmem",
        kind: "sysctl",
        type: "integer",
        values: [4096, 131072, 6291456],
        managed: true,
        overridden: false,
      },
      {
        tuner: "tcp_buffer",
        name: "net.ipv4.tcp_rmem",
        kind: "sysctl",
        type: "integer",
        values: [4096, 131072, 6291456],
        managed: true,
        overridden: false,
        netns: "blue",
      },
      {
        tuner: "cong",
        name: 'weird "name"\n',
        kind: "other",
        type: "string",
        values: ["bbr"],
        managed: false,
        overridden: true,
      },
    ],
    status: () => [
      { tuner: "tcp_buffer", name: "net.ipv4.tcp_rmem", values: [4096, 131072, 6291456] },
      { tuner: "tcp_buffer", name: "net.core.rmem_max", values: [212992] },
      { tuner: "tcp_buffer", name: "net.core.rmem_max", values: [1], netns: "blue" },
      { tuner: "cong", name: "net.ipv4.tcp_congestion_control", values: ['b"b\\r'] },
    ],
    summary: () => ({ since: "2025-01-01T00:00:00Z", scenarios: [], changes: [] }),
    rollback: () => [
      {
        tuner: "tcp_buffer",
        sysctl: "net.ipv4.tcp_rmem",
        original: [4096, 131072, 6291456],
        current: [4096, 131072, 7864320],
      },
      {
        tuner: "tcp_buffer",
        sysctl: "net.core.rmem_max",
        netns: "it's",
        original: [212992],
        current: [425984],
      },
    ],
    enable: (target) => {
      calls.push(`enable ${target}`);
      return { target, kind: "tuner", state: "active", changed: true, message: "enabled" };
    },
    disable: (target) => {
      calls.push(`disable ${target}`);
      throw new ControlError("not-found", `no tuner or sysctl named '${target}'`);
    },
    metrics: () => ({
      tunables: [{ sysctl: "net.core.rmem_max", values: [212992], changes: 1 }],
      scenarios: [],
      events: [],
      hooks: [],
      process: { residentBytes: 1000, cpuSeconds: 0.5 },
    }),
    ...overrides,
  };
  return { provider, calls };
}

const encoder = new TextEncoder();

function context(provider: ControlProvider, handlerTimeoutMs = 1000) {
  const errors: string[] = [];
  return {
    errors,
    ctx: {
      provider,
      limits: { ...DEFAULT_CONTROL_LIMITS, handlerTimeoutMs },
      closing: new AbortController().signal,
      onError: (m: string) => errors.push(m),
    },
  };
}

Deno.test("runVerb: help lists every verb with its argument", async () => {
  const { provider } = fakeProvider();
  const help = await runVerb(provider, { verb: "help" }) as { verb: string; arg: string | null }[];
  assert.deepEqual(help.map((h) => h.verb), VERB_NAMES);
  assert.equal(help.find((h) => h.verb === "enable")?.arg, "<tuner|sysctl>");
  assert.equal(help.find((h) => h.verb === "status")?.arg, null);
});

Deno.test("runVerb: tunables/status pass netns; the bpftune forms ask for the host's only", async () => {
  const asked: string[] = [];
  const { provider } = fakeProvider();
  const spy = {
    ...provider,
    tunables: (netns?: string) => (asked.push(`tunables ${netns}`), provider.tunables(netns)),
    status: (netns?: string) => (asked.push(`status ${netns}`), provider.status(netns)),
  };
  await runVerb(spy, { verb: "tunables" });
  await runVerb(spy, { verb: "status", netns: "all" });
  await runVerb(spy, { verb: "jtunables" });
  await runVerb(spy, { verb: "jstatus" });
  assert.deepEqual(asked, [
    "tunables undefined",
    "status all",
    "tunables global",
    "status global",
  ]);
});

Deno.test("runVerb: jtunables has bpftune's shape, global namespace only", async () => {
  const { provider } = fakeProvider();
  const data = await runVerb(provider, { verb: "jtunables" });
  assert.deepEqual(data, {
    tcp_buffer: { "net.ipv4.tcp_rmem": { type: "integer", num_values: 3 } },
    cong: { 'weird "name"\n': { type: "string", num_values: 1 } },
  });
  // bpftune emitted strings unescaped; ours must survive a JSON round-trip.
  assert.deepEqual(JSON.parse(JSON.stringify(data)), data);
});

Deno.test("runVerb: jstatus uses arrays only for multi-value sysctls", async () => {
  const { provider } = fakeProvider();
  assert.deepEqual(await runVerb(provider, { verb: "jstatus" }), {
    tcp_buffer: { "net.ipv4.tcp_rmem": [4096, 131072, 6291456], "net.core.rmem_max": 212992 },
    cong: { "net.ipv4.tcp_congestion_control": 'b"b\\r' },
  });
});

Deno.test("runVerb: rollback adds restore commands and changes nothing", async () => {
  let enableCalls = 0;
  const { provider } = fakeProvider({ enable: () => (enableCalls++, Promise.reject()) });
  const plan = await runVerb(provider, { verb: "rollback" }) as { command: string }[];
  assert.deepEqual(plan.map((p) => p.command), [
    'sysctl -w net.ipv4.tcp_rmem="4096 131072 6291456"',
    `ip netns exec 'it'\\''s' sysctl -w net.core.rmem_max=212992`,
  ]);
  assert.equal(enableCalls, 0);
});

Deno.test("rollbackCommand quotes values that are not plain words", () => {
  assert.equal(
    rollbackCommand({ tuner: "t", sysctl: "net.x", original: ["$(reboot)"], current: [] }),
    "sysctl -w net.x='$(reboot)'",
  );
});

Deno.test("runVerb: enable/disable pass the target; provider errors propagate", async () => {
  const { provider, calls } = fakeProvider();
  const result = await runVerb(provider, { verb: "enable", target: "tcp_buffer" });
  assert.equal((result as { message: string }).message, "enabled");
  await assert.rejects(
    () => runVerb(provider, { verb: "disable", target: "nope" }) as Promise<unknown>,
    (e: unknown) => e instanceof ControlError && e.code === "not-found",
  );
  assert.deepEqual(calls, ["enable tcp_buffer", "disable nope"]);
  await assert.rejects(
    () => runVerb(provider, { verb: "enable" }) as Promise<unknown>,
    (e: unknown) => e instanceof ControlError && e.code === "bad-args",
  );
});

Deno.test("runVerb: metrics renders the snapshot as OpenMetrics text", async () => {
  const { provider } = fakeProvider();
  const text = await runVerb(provider, { verb: "metrics" }) as string;
  assert.match(
    text,
    /^bpfpilot_tunable_value\{sysctl="net.core.rmem_max",index="0",netns="global"\} 212992$/m,
  );
  assert.ok(text.endsWith("# EOF\n"));
});

Deno.test("answerLine: bad bytes, bad requests and provider failures become error answers", async () => {
  const { provider } = fakeProvider({
    tuners: () => {
      throw new Error("tuner table locked");
    },
    status: () => [{ tuner: "t", name: "x", values: [1n as unknown as number] }],
  });
  const { ctx, errors } = context(provider);
  const code = async (bytes: Uint8Array) => {
    const r = await answerLine(bytes, ctx);
    return r.ok ? "ok" : r.error.code;
  };
  assert.equal(await code(new Uint8Array([0xff, 0xfe, 0x73])), "bad-encoding");
  assert.equal(await code(new Uint8Array([0x73, 0xc3])), "bad-encoding"); // truncated sequence
  assert.equal(await code(encoder.encode("summary")), "ok");
  assert.equal(await code(encoder.encode("{nope")), "bad-json");
  assert.equal(await code(encoder.encode("disable ghost")), "not-found");
  assert.equal(await code(encoder.encode("tuners")), "internal");
  assert.equal(await code(encoder.encode("status")), "internal"); // BigInt: not serialisable
  assert.equal(errors.length, 2, errors.join("; "));
  assert.match(errors[0], /tuner table locked/);
});

Deno.test("answerLine: a provider that hangs is answered with timeout", async () => {
  let release = () => {};
  const hanging = new Promise<never[]>((resolve) => release = () => resolve([]));
  const { provider } = fakeProvider({ tuners: () => hanging });
  const { ctx, errors } = context(provider, 50);
  const started = Date.now();
  const response = await answerLine(encoder.encode("tuners"), ctx);
  assert.equal(response.ok ? "ok" : response.error.code, "timeout");
  assert.ok(Date.now() - started < 1000);
  assert.equal(errors.length, 1);
  release();
});

Deno.test("LineBuffer: splits lines across chunks and bounds line length", () => {
  const lines = new LineBuffer(8);
  lines.push(encoder.encode("sta"));
  assert.equal(lines.next().kind, "need-more");
  lines.push(encoder.encode("tus\nhelp\npart"));
  const first = lines.next();
  assert.equal(first.kind, "line");
  assert.equal(first.kind === "line" && new TextDecoder().decode(first.bytes), "status");
  const second = lines.next();
  assert.equal(second.kind === "line" && new TextDecoder().decode(second.bytes), "help");
  assert.equal(lines.next().kind, "need-more");
  assert.equal(new TextDecoder().decode(lines.rest()), "part");
  assert.equal(lines.rest().length, 0);

  const long = new LineBuffer(8);
  long.push(encoder.encode("123456789"));
  assert.equal(long.next().kind, "too-long"); // no newline yet, already over the limit
  const longLine = new LineBuffer(8);
  longLine.push(encoder.encode("123456789\n"));
  assert.equal(longLine.next().kind, "too-long");
  const exact = new LineBuffer(8);
  exact.push(encoder.encode("12345678\n"));
  assert.equal(exact.next().kind, "line");
});
