/**
 * The libbpf binding against the real kernel: objects loaded from embedded bytes, a real
 * tracepoint triggered by loopback TCP traffic, events read back through the ring buffer and a
 * hash map, per-CPU sums, a missing-target program skipped while the rest loads, a verifier
 * rejection turned into a clear error, and nothing left attached after close.
 */
import assert from "node:assert/strict";
import selftest from "../../dist/bpf/selftest.bpf.o" with { type: "bytes" };
import selftestBad from "../../dist/bpf/selftest_bad.bpf.o" with { type: "bytes" };
import { BpfError, RingBufferReader, u32Key } from "../../src/libbpf/mod.ts";
import { loadObject } from "../../src/libbpf/load.ts";
import { decodeEvent, EVENT_VERSION } from "../../src/tuning/event.ts";
import { ensureTracefs } from "../../src/kernel/tracefs.ts";
import { IS_ROOT, loadedPrograms, waitFor } from "../support/kernel.ts";

const TCP_ESTABLISHED = 1;

/** `noWakeup`: the program submits its events without waking the reader (param[1]). */
/** A listener on a free loopback port (the programs under test filter on it). */
function loopbackListener(): { listener: Deno.Listener; port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return { listener, port: (listener.addr as Deno.NetAddr).port };
}

function configBytes(port: number, noWakeup = false): Uint8Array {
  const b = new Uint8Array(64); // struct bpfp_config
  new DataView(b.buffer).setBigUint64(16, BigInt(port), true); // param[0]
  new DataView(b.buffer).setBigUint64(24, noWakeup ? 1n : 0n, true); // param[1]
  return b;
}

/** One loopback TCP connection carrying `bytes` bytes; returns the server's port. */
async function loopbackTransfer(bytes: number): Promise<number> {
  const { listener, port } = loopbackListener();
  return await loopbackOn(listener, port, bytes);
}

async function loopbackOn(listener: Deno.Listener, port: number, bytes: number) {
  const server = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(65536);
    let total = 0;
    while (total < bytes) {
      const n = await conn.read(buf);
      if (n === null) break;
      total += n;
    }
    conn.close();
  })();
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  await client.write(new Uint8Array(bytes));
  await server;
  client.close();
  listener.close();
  return port;
}

Deno.test({
  name: "libbpf: tp_btf program sees loopback TCP; events via ring buffer, counts via hash map",
  ignore: !IS_ROOT,
  async fn() {
    const { listener, port } = loopbackListener();
    const { object, skipped } = loadObject(selftest, {
      name: "bpfp_selftest",
      enable: (p) => p.name !== "bpfp_st_state_tp",
    });
    const reader = new RingBufferReader({ minGapMs: 0 });
    try {
      // The missing-target program is skipped with a reason; the rest loaded.
      assert.deepEqual(skipped.map((s) => s.program), ["bpfp_st_missing"]);
      assert.match(skipped[0].reason, /bpfp_no_such_kernel_function does not exist/);
      object.map("bpfp_config").update(u32Key(0), configBytes(port));
      object.program("bpfp_st_state").attach("tp_btf", "inet_sock_set_state");
      assert.ok(loadedPrograms("bpfp_st_state").length >= 1, "program visible in bpftool");

      const events: ReturnType<typeof decodeEvent>[] = [];
      reader.add(object.map("bpfp_events"), (b) => events.push(decodeEvent(b)));
      const loop = reader.start();
      await loopbackOn(listener, port, 1 << 20);
      await new Promise((r) => setTimeout(r, 100));
      await reader.stop();
      await loop;

      const established = events.filter((e) => e.kind === TCP_ESTABLISHED);
      assert.ok(established.length >= 1, `saw ${events.length} events, none ESTABLISHED`);
      assert.ok(
        established.every((e) => Number(e.values[0]) === port || Number(e.values[1]) === port),
      );
      assert.ok(events.every((e) => e.version === EVENT_VERSION));
      assert.ok(events.every((e) => e.rlKind === e.kind), "the rate-limit key rides in the header");
      assert.ok(Number(established[0].values[2]) > 0, "sk_rcvbuf read through CO-RE");

      const counts = object.map("bpfp_state_counts");
      const estCount = counts.lookup(u32Key(TCP_ESTABLISHED));
      assert.ok(estCount, "ESTABLISHED counted in the hash map");
      assert.ok(new DataView(estCount.buffer).getBigUint64(0, true) >= 1n);
      assert.ok([...counts.keys()].length >= 2, "several TCP states counted");
      // Delete: present once, then gone.
      assert.equal(counts.delete(u32Key(TCP_ESTABLISHED)), true);
      assert.equal(counts.lookup(u32Key(TCP_ESTABLISHED)), null);
      assert.equal(counts.delete(u32Key(TCP_ESTABLISHED)), false);
      // Per-CPU stats summed over possible CPUs: hits >= events emitted.
      const stats = object.map("bpfp_stats");
      assert.ok(stats.perCpu);
      const hits = stats.sumU64(u32Key(0)), emitted = stats.sumU64(u32Key(1));
      assert.equal(emitted, BigInt(events.length));
      assert.ok(hits >= emitted);
    } finally {
      reader.close();
      object.close();
    }
    // The kernel frees programs after an RCU grace period: allow it a moment.
    assert.ok(
      await waitFor(() => loadedPrograms("bpfp_st_state").length === 0, 3000),
      "nothing stays loaded after close",
    );
  },
});

Deno.test({
  name: "libbpf: events submitted without a wake-up reach the reader at its next poll",
  ignore: !IS_ROOT,
  async fn() {
    const { listener, port } = loopbackListener();
    const reader = new RingBufferReader({ minGapMs: 0, pollMs: 200 });
    const events: ReturnType<typeof decodeEvent>[] = [];
    const object = stateEventsTo(reader, (b) => events.push(decodeEvent(b)), port, true);
    try {
      const loop = reader.start();
      await loopbackOn(listener, port, 4096);
      assert.ok(await waitFor(() => events.length > 0, 3000), "drained at a poll timeout");
      assert.equal(reader.stats.wakeups, 0, "the kernel never woke the reader");
      assert.ok(events.some((e) => e.kind === TCP_ESTABLISHED));
      await reader.stop();
      await loop;
    } finally {
      reader.close();
      object.close();
    }
  },
});

/**
 * The selftest object with only its tp_btf state program attached, its events filtered to `port`
 * (sent without a wake-up when `noWakeup`) and handed to `reader`'s `onEvent`.
 */
function stateEventsTo(
  reader: RingBufferReader,
  onEvent: (bytes: Uint8Array) => void,
  port: number,
  noWakeup = false,
) {
  const { object } = loadObject(selftest, {
    name: "bpfp_selftest",
    enable: (p) => p.name === "bpfp_st_state",
  });
  try {
    object.map("bpfp_config").update(u32Key(0), configBytes(port, noWakeup));
    object.program("bpfp_st_state").attach("tp_btf", "inet_sock_set_state");
    reader.add(object.map("bpfp_events"), onEvent);
  } catch (e) {
    object.close();
    throw e;
  }
  return object;
}

/** `count` loopback connections to `listener`, `gapMs` apart (each sends `bytes`). */
async function connections(listener: Deno.Listener, count: number, gapMs: number, bytes = 1024) {
  const port = (listener.addr as Deno.NetAddr).port;
  for (let i = 0; i < count; i++) {
    const accepted = listener.accept();
    const client = await Deno.connect({ hostname: "127.0.0.1", port });
    await client.write(new Uint8Array(bytes));
    client.close();
    (await accepted).close();
    await new Promise((r) => setTimeout(r, gapMs));
  }
}

Deno.test({
  name: "libbpf: a reader pauses minGapMs after each drain: what arrives meanwhile is one wake-up",
  ignore: !IS_ROOT,
  async fn() {
    const { listener, port } = loopbackListener();
    const reader = new RingBufferReader({ minGapMs: 600 });
    let events = 0;
    const object = stateEventsTo(reader, () => events++, port);
    try {
      const loop = reader.start();
      // Connections 20 ms apart, well within the pause that follows the first one's wake-up.
      await connections(listener, 6, 20);
      await new Promise((r) => setTimeout(r, 100)); // the last connection's closing states
      const sent = Number(object.map("bpfp_stats").sumU64(u32Key(1)));
      assert.ok(await waitFor(() => events === sent, 2000), `drained ${events} of ${sent}`);
      assert.ok(events >= 6, `saw ${events} events`);
      assert.ok(reader.stats.wakeups <= 2, `${reader.stats.wakeups} wake-ups, not one per burst`);
      await reader.stop();
      await loop;
    } finally {
      listener.close();
      reader.close();
      object.close();
    }
  },
});

Deno.test({
  name: "libbpf: a paced reader leaves a stream's drains to pacedDrain() until one finds nothing",
  ignore: !IS_ROOT,
  async fn() {
    const { listener, port } = loopbackListener();
    const reader = new RingBufferReader({ paced: true });
    let events = 0;
    const object = stateEventsTo(reader, () => events++, port);
    try {
      const loop = reader.start();
      // A stream: connections 40 ms apart. The reader drains the first ones itself, then waits
      // for its pacer: what comes after stays in the ring buffer.
      await connections(listener, 8, 40);
      const held = events;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(events, held, "nothing drained while the stream waits for its pacer");
      await connections(listener, 2, 0);
      assert.equal(events, held);
      const drained = reader.pacedDrain();
      assert.ok(drained > 0, "the paced drain consumed the stream's waiting events");
      assert.equal(events, held + drained);
      const wakeups = reader.stats.wakeups;
      // Nothing new: the next paced drain finds nothing and ends the stream; a lone event is then
      // the reader's own again, at once.
      assert.equal(reader.pacedDrain(), 0);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(reader.pacedDrain(), 0, "no stream waits any more");
      await connections(listener, 1, 0);
      assert.ok(await waitFor(() => events > held + drained, 1000), "a lone event drained at once");
      assert.equal(reader.stats.wakeups, wakeups + 1);

      // Without a pacer a stream still drains, after PACED_FALLBACK_MS.
      await connections(listener, 6, 40);
      const before = events;
      await connections(listener, 1, 0);
      assert.ok(await waitFor(() => events > before, 4000), "drained without its pacer");
      // stop() ends a paced wait at once.
      await connections(listener, 6, 40);
      const t0 = performance.now();
      await reader.stop();
      await loop;
      assert.ok(performance.now() - t0 < 500, "stop did not wait for the pacer");
    } finally {
      listener.close();
      reader.close();
      object.close();
    }
  },
});

Deno.test({
  name: "libbpf: a paced reader whose drains ask to be prompt reads a stream at its wake-ups",
  ignore: !IS_ROOT,
  async fn() {
    const { listener, port } = loopbackListener();
    // What the daemon answers after a growth on fresh evidence (tcp_buffer's receive max, which
    // must follow its socket): the next event at its wake-up, not at the pacer's tick.
    let prompt = true, asked = 0;
    const reader = new RingBufferReader({ paced: true, prompt: () => (asked++, prompt) });
    let events = 0;
    const object = stateEventsTo(reader, () => events++, port);
    const sent = () => Number(object.map("bpfp_stats").sumU64(u32Key(1)));
    try {
      const loop = reader.start();
      // The stream of the paced test (connections 40 ms apart): drained without a pacer, well
      // before the reader's own fallback (PACED_FALLBACK_MS, 2 s).
      await connections(listener, 8, 40);
      assert.ok(await waitFor(() => events === sent(), 500), `drained ${events} of ${sent()}`);
      assert.ok(asked > 0, "asked after its drains");
      // Not prompt any more: the same stream waits for its pacer again.
      prompt = false;
      await connections(listener, 8, 40);
      const held = events;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(events, held, "nothing drained while the stream waits for its pacer");
      assert.ok(events < sent(), "events wait in the ring buffer");
      // A paced drain whose events ask to be prompt ends the stream: the next is read at once.
      prompt = true;
      assert.ok(reader.pacedDrain() > 0);
      await new Promise((r) => setTimeout(r, 50));
      await connections(listener, 2, 40);
      assert.ok(await waitFor(() => events === sent(), 500), `drained ${events} of ${sent()}`);
      await reader.stop();
      await loop;
    } finally {
      listener.close();
      reader.close();
      object.close();
    }
  },
});

Deno.test({
  name: "libbpf: classic tracepoint flavour attaches (tracefs mounted if needed) and fires",
  ignore: !IS_ROOT,
  async fn() {
    const tracefs = ensureTracefs();
    const { object } = loadObject(selftest, {
      name: "bpfp_selftest",
      enable: (p) => p.name === "bpfp_st_state_tp",
    });
    try {
      const { listener, port } = loopbackListener();
      object.map("bpfp_config").update(u32Key(0), configBytes(port));
      object.program("bpfp_st_state_tp").attach("tracepoint", "sock/inet_sock_set_state");
      await loopbackOn(listener, port, 4096);
      const est = object.map("bpfp_state_counts").lookup(u32Key(TCP_ESTABLISHED));
      assert.ok(est && new DataView(est.buffer).getBigUint64(0, true) >= 1n);
    } finally {
      object.close();
      tracefs.release();
    }
  },
});

Deno.test({
  name: "libbpf: a verifier rejection is a clear BpfError and the process stays up",
  ignore: !IS_ROOT,
  async fn() {
    let err: unknown;
    try {
      loadObject(selftestBad, { name: "bpfp_bad", required: new Set(["bpfp_bad_unchecked"]) });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof BpfError, `expected BpfError, got ${err}`);
    assert.equal(err.kind, "verifier");
    assert.match(err.message, /verifier rejected/);
    assert.doesNotMatch(err.message, /Unknown error|errno -?\d/);
    assert.ok(err.detail.some((l) => /invalid mem access|R0/.test(l)), "verifier log kept");
    // Still alive and able to load something else.
    const port = await loopbackTransfer(1024);
    assert.ok(port > 0);
    assert.deepEqual(loadedPrograms("bpfp_bad"), []);
  },
});

Deno.test({
  name: "libbpf: a non-required rejected program is skipped with the verifier's reason",
  ignore: !IS_ROOT,
  fn() {
    const { object, skipped } = loadObject(selftestBad, {
      name: "bpfp_bad",
      enable: (p) => p.name === "bpfp_bad_unchecked",
    });
    object.close();
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0].program, "bpfp_bad_unchecked");
    assert.match(skipped[0].reason, /verifier/);
  },
});
