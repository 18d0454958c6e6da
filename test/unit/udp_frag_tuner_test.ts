/**
 * The udp_buffer and ip_frag glue on the fake TunerContext: events in, proposals out, the
 * parameters configure() writes, and a missing tunable taken as "that part off" (no crash).
 */
import assert from "node:assert/strict";
import { udpBufferTuner } from "../../src/tuners/udp_buffer.ts";
import { ipFragTuner } from "../../src/tuners/ip_frag.ts";
import { fakeObject, startTuner } from "../support/fake_context.ts";

const UB = udpBufferTuner.contract!.kinds;
const IF = ipFragTuner.contract!.kinds;
const LOCKED = 2n;
const ENOMEM = 12n, ENOBUFS = 105n;

function udp() {
  const t = startTuner(udpBufferTuner);
  t.ctx.set("net.core.rmem_max", [16384]).set("net.core.rmem_default", [16384]);
  t.ctx.set("net.ipv4.udp_mem", [1_000_000, 2_000_000, 4_000_000]);
  return t;
}

Deno.test("udp_buffer glue: an unlocked socket's full queue grows rmem_max then rmem_default", () => {
  const t = udp();
  t.event({ kind: UB.UB_RCVQ_FULL, netns: 0n, values: [16384n, 20000n, 0n, ENOMEM] });
  assert.deepEqual(t.ctx.proposals.map((p) => [p.sysctl, p.netns, p.from, p.to]), [
    ["net.core.rmem_max", "global", [16384], [20480]],
    ["net.core.rmem_default", "global", [16384], [20480]],
  ]);
});

Deno.test("udp_buffer glue: SO_RCVBUF sockets never; a refused rmem_max stops rmem_default", () => {
  const locked = udp();
  locked.event({ kind: UB.UB_RCVQ_FULL, values: [32768n, 40000n, LOCKED, ENOMEM] });
  assert.deepEqual(locked.ctx.proposals, []);
  const refused = udp();
  refused.ctx.accept = (p) => p.sysctl !== "net.core.rmem_max";
  refused.event({ kind: UB.UB_RCVQ_FULL, values: [16384n, 20000n, 0n, ENOMEM] });
  assert.deepEqual(refused.ctx.proposals.map((p) => p.sysctl), ["net.core.rmem_max"]);
});

Deno.test("udp_buffer glue: memory events grow udp_mem; missing sysctls are no crash", () => {
  const t = udp();
  t.ctx.set("net.ipv4.udp_mem", [10_000, 20_000, 40_000]);
  t.event({ kind: UB.UB_MEM_PRESSURE, values: [39_900n, 10_000n, 20_000n, 40_000n] });
  const mem = t.ctx.proposals.filter((p) => p.sysctl === "net.ipv4.udp_mem");
  // Near exhaustion only the max grows (within a quarter of /proc/zoneinfo's free buffer pages).
  assert.equal(mem.length, 1);
  assert.deepEqual(mem[0].to, [10_000, 20_000, 50_000]);
  const bare = startTuner(udpBufferTuner);
  bare.event({ kind: UB.UB_RCVQ_FULL, values: [16384n, 20000n, 0n, ENOMEM] });
  bare.event({ kind: UB.UB_RCVQ_FULL, values: [16384n, 20000n, 0n, ENOBUFS] });
  bare.event({ kind: UB.UB_MEM_PRESSURE, values: [1n, 1n, 1n, 1n] });
  assert.deepEqual(bare.ctx.proposals, []);
});

Deno.test("ip_frag glue: a near-full event grows the namespace's threshold; learning rate set", () => {
  const t = startTuner(ipFragTuner);
  t.ctx.set("net.ipv4.ipfrag_high_thresh", [4194304], "ns:4026532999");
  t.ctx.set("net.ipv4.ipfrag_low_thresh", [3145728], "ns:4026532999");
  t.event({ kind: IF.IF_NEAR_FULL_V4, netns: 4026532999n, values: [4194000n, 4194304n] });
  assert.deepEqual(t.ctx.proposals.map((p) => [p.sysctl, p.netns, p.from, p.to]), [
    ["net.ipv4.ipfrag_high_thresh", "ns:4026532999", [4194304], [5242880]],
  ]);
  // IPv6 threshold absent (IPv6 disabled): said once, nothing proposed, no crash.
  t.event({ kind: IF.IF_NEAR_FULL_V6, netns: 4026532999n, values: [100n, 100n] });
  t.event({ kind: IF.IF_NEAR_FULL_V6, netns: 4026532999n, values: [100n, 100n] });
  assert.equal(t.ctx.proposals.length, 1);
  assert.equal(
    t.ctx.lines.filter((l) => /ip6frag_high_thresh.*does not exist/.test(l.msg)).length,
    1,
  );
  const { object, writes } = fakeObject();
  t.tuner.configure?.(object);
  const at = ipFragTuner.contract!.params.lr_shift.offset;
  assert.equal(new DataView(writes.get("bpfp_config")!.buffer).getBigUint64(at, true), 2n);
});
