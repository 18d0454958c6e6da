/** The tcp_buffer tuner's glue on a fake context: BPF events in, proposals out. */
import assert from "node:assert/strict";
import { contract } from "../../dist/bpf/tcp_buffer.contract.ts";
import { tcpBufferTuner } from "../../src/tuners/tcp_buffer.ts";
import { fakeObject, startTuner } from "../support/fake_context.ts";
import { growthNeed, windowLimitedNeed } from "../../src/tuners/tcp_buffer_rules.ts";

const K = contract.kinds;
const RMEM = "net.ipv4.tcp_rmem", WMEM = "net.ipv4.tcp_wmem", MEM = "net.ipv4.tcp_mem";
/** tcp_mem far above anything this host allocates: memory is "normal" whatever the host does. */
const ROOMY = [2 ** 40, 2 ** 41, 2 ** 42];

function tuner() {
  const t = startTuner(tcpBufferTuner);
  t.ctx.set(MEM, ROOMY).set(RMEM, [4096, 131072, 6291456]).set(WMEM, [4096, 16384, 4194304])
    .set("net.ipv4.tcp_moderate_rcvbuf", [1]);
  return t;
}

Deno.test("tcp_buffer: a receive buffer near the max grows tcp_rmem max by the learning rate", () => {
  const t = tuner();
  t.event({ kind: K.TB_RMEM_NEAR_MAX, values: [6000000n, 6291456n, 500n, 0n] });
  assert.deepEqual(t.ctx.proposals.map((p) => [p.tuner, p.netns, p.sysctl, p.from, p.to]), [
    ["tcp_buffer", "global", RMEM, [4096, 131072, 6291456], [4096, 131072, 7864320]],
  ]);
  assert.equal(t.ctx.proposals[0].scenario, "need to increase TCP buffer size(s)");
});

Deno.test("tcp_buffer: the size the kernel wanted (payload want) sets how far the max grows", () => {
  const t = tuner();
  t.event({ kind: K.TB_RMEM_NEAR_MAX, values: [6000000n, 6291456n, 500n, 0n, 15000000n] });
  t.event({ kind: K.TB_WMEM_NEAR_MAX, values: [4000000n, 4194304n, 500n, 0n, 99000000n] });
  assert.deepEqual(t.ctx.proposals.map((p) => [p.sysctl, p.to[2]]), [
    [RMEM, 15000000],
    [WMEM, 4 * 4194304], // at most 4x in one change
  ]);
});

Deno.test("tcp_buffer: a receive event at a replaced max decides nothing; at the new max, growth", () => {
  const t = tuner();
  t.ctx.set(RMEM, [4096, 65536, 65536]);
  t.event({ kind: K.TB_RMEM_NEAR_MAX, values: [65536n, 65536n, 500n, 0n, 200000n] });
  // Sent before that change landed: the socket ran into 65536, which is gone.
  t.event({ kind: K.TB_RMEM_NEAR_MAX, values: [65536n, 65536n, 500n, 0n, 400000n] });
  // The first socket to reach the new max: fresh evidence, grows on.
  t.event({ kind: K.TB_RMEM_NEAR_MAX, values: [200000n, 200000n, 500n, 0n, 700000n] });
  assert.deepEqual(t.ctx.proposals.map((p) => [p.from[2], p.to[2], p.fresh]), [
    [65536, 200000, true],
    [200000, 700000, true],
  ]);
});

Deno.test("tcp_buffer: growing rmem turns receive auto-tuning on when it is off", () => {
  const t = tuner();
  t.ctx.set("net.ipv4.tcp_moderate_rcvbuf", [0]);
  t.event({ kind: K.TB_RMEM_NEAR_MAX, values: [6000000n, 6291456n, 0n, 0n] });
  assert.deepEqual(t.ctx.proposals.map((p) => [p.sysctl, p.to]), [
    [RMEM, [4096, 131072, 7864320]],
    ["net.ipv4.tcp_moderate_rcvbuf", [1]],
  ]);
});

Deno.test("tcp_buffer: an application-locked socket never drives growth", () => {
  const t = tuner();
  t.event({ kind: K.TB_RMEM_NEAR_MAX, values: [6000000n, 6291456n, 0n, 2n /* RCVBUF_LOCK */] });
  t.event({ kind: K.TB_WMEM_NEAR_MAX, values: [4000000n, 4194304n, 0n, 1n /* SNDBUF_LOCK */] });
  assert.deepEqual(t.ctx.proposals, []);
});

Deno.test("tcp_buffer: an event from another namespace tunes that namespace", () => {
  const t = tuner();
  t.ctx.set(WMEM, [4096, 16384, 4194304], "ns:4026532000");
  t.event({ kind: K.TB_WMEM_NEAR_MAX, netns: 4026532000n, values: [4000000n, 4194304n, 0n, 0n] });
  assert.deepEqual(t.ctx.proposals.map((p) => [p.netns, p.sysctl, p.to]), [
    ["ns:4026532000", WMEM, [4096, 16384, 5242880]],
  ]);
});

Deno.test("tcp_buffer: a max at INT_MAX is reported at its ceiling, not proposed", () => {
  const t = tuner();
  t.ctx.set(RMEM, [4096, 131072, 2147483647]);
  t.event({ kind: K.TB_RMEM_NEAR_MAX, values: [2147483000n, 2147483647n, 0n, 0n] });
  assert.deepEqual(t.ctx.proposals, []);
  assert.deepEqual(t.ctx.ceilings.map((c) => [c.sysctl, c.ceiling]), [[RMEM, 2147483647]]);
});

Deno.test("tcp_buffer: a sysctl that cannot be read gives nothing", () => {
  const t = startTuner(tcpBufferTuner);
  t.event({ kind: K.TB_RMEM_NEAR_MAX, values: [6000000n, 6291456n, 0n, 0n] });
  t.event({ kind: K.TB_MEM_EXCEEDED, values: [1n, 2n, 3n, 4n] });
  t.event({ kind: 99, values: [1n] });
  assert.deepEqual(t.ctx.proposals, []);
});

Deno.test("tcp_buffer: configure writes the rate limit and learning-rate shift at the contract's offsets", () => {
  const t = tuner();
  const { object, writes } = fakeObject();
  t.tuner.configure?.(object);
  const cfg = new DataView(writes.get("bpfp_config")!.buffer);
  assert.equal(cfg.getBigUint64(contract.config.rl_interval_ns.offset, true), 500_000_000n);
  assert.equal(cfg.getBigUint64(contract.params.lr_shift.offset, true), 2n); // rate 4: 1/4
});

Deno.test("tcp_buffer: a receive change visits its namespace once for every value it reads there", () => {
  const t = tuner();
  const ns = "ns:4026532000";
  t.ctx.set(RMEM, [4096, 131072, 6291456], ns).set("net.ipv4.tcp_moderate_rcvbuf", [0], ns);
  t.event({ kind: K.TB_RMEM_NEAR_MAX, netns: 4026532000n, values: [6000000n, 6291456n, 0n, 0n] });
  assert.deepEqual(t.ctx.proposals.map((p) => [p.netns, p.sysctl, p.to]), [
    [ns, RMEM, [4096, 131072, 7864320]],
    [ns, "net.ipv4.tcp_moderate_rcvbuf", [1]],
  ]);
  assert.deepEqual(t.ctx.visits.filter((v) => v.netns === ns), [
    { netns: ns, sysctls: [RMEM, "net.ipv4.tcp_moderate_rcvbuf"] },
  ]);
});

Deno.test("tcp_buffer: buffer decisions read the host's tcp_mem at most once a second", () => {
  const t = tuner();
  const memReads = () => t.ctx.visits.filter((v) => v.sysctls.includes(MEM)).length;
  for (let i = 0; i < 3; i++) {
    t.ctx.clock += 300;
    t.event({ kind: K.TB_WMEM_NEAR_MAX, values: [4000000n, 4194304n, 0n, 0n] });
  }
  assert.equal(memReads(), 1, "three events within a second share one read");
  // A ceiling below the max: the next decision, a second later, sees it.
  t.ctx.set(MEM, [1000, 2000, 3000]);
  t.ctx.clock += 1000;
  t.event({ kind: K.TB_WMEM_NEAR_MAX, values: [4000000n, 4194304n, 0n, 0n] });
  assert.equal(memReads(), 2);
});

Deno.test("tcp_buffer: growing tcp_mem starts from its live value, cached or not", () => {
  const t = tuner();
  t.ctx.set(MEM, [100, 200, 300]);
  t.event({ kind: K.TB_WMEM_NEAR_MAX, values: [4000000n, 4194304n, 0n, 0n] }); // caches tcp_mem
  t.ctx.set(MEM, [110, 220, 330]); // someone changed it since
  t.event({ kind: K.TB_MEM_EXCEEDED, values: [400n] });
  const grown = t.ctx.proposals.filter((p) => p.sysctl === MEM);
  assert.ok(grown.length > 0, "memory pressure grows tcp_mem");
  for (const p of grown) assert.deepEqual(p.from, [110, 220, 330]);
});

Deno.test("tcp_buffer: a settled max asks the kernel to keep needs up to growthNeed; more grows it", () => {
  const t = tuner();
  const max = 1048576;
  t.ctx.set(RMEM, [4096, 131072, max]);
  // buf, limit, srtt, userlocks, want, used: a socket below the max, the kernel wanting 3 MB.
  const at = (used: bigint) =>
    t.event({ kind: K.TB_RMEM_NEAR_MAX, values: [500000n, BigInt(max), 500n, 0n, 3000000n, used] });
  // A round trip needing 30 KB does not fill a window of 1 MiB: kept in the kernel up to half
  // the max, nothing grown.
  at(30000n);
  assert.equal(t.ctx.proposals.length, 0, "not window-limited: no growth");
  assert.deepEqual(t.ctx.needs, [{ sysctl: RMEM, netns: "global", need: windowLimitedNeed(max) }]);
  t.ctx.needs.length = 0;
  // One that fills more than half of it grows it.
  at(600000n);
  assert.deepEqual(t.ctx.proposals.map((p) => p.to[2]), [3000000], "grown, not settled yet");
  assert.equal(t.ctx.needs.length, 0, "growing: nothing to keep");
  // Quiet for the settle's 5 s: trimmed back to the max before the growth.
  t.ctx.clock += 6000;
  t.tuner.onTick?.();
  assert.deepEqual(t.ctx.proposals.map((p) => p.to[2]), [3000000, max]);
  // The same need at the trimmed max: no change, and the threshold the kernel gets.
  at(40000n);
  assert.equal(t.ctx.proposals.length, 2);
  assert.deepEqual(t.ctx.needs, [{ sysctl: RMEM, netns: "global", need: growthNeed(max, 30000) }]);
  assert.equal(t.ctx.needs[0].need, 873813, "1.25 x what 1 MiB holds (1 MiB / 1.5)");
  // One byte above it: growth, and no threshold (the change unmutes the namespace's keys).
  at(873814n);
  assert.equal(t.ctx.proposals.length, 3);
  assert.equal(t.ctx.proposals[2].from[2], max);
  assert.ok(t.ctx.proposals[2].to[2] > max);
  assert.equal(t.ctx.needs.length, 1);
});
