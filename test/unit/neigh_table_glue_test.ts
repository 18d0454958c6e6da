/**
 * The neigh_table tuner's glue with a fake context: BPF events in, proposals out; missing IPv6
 * thresholds leave ARP tuned; an admin override stops all three thresholds; shrinking waits for
 * a sustained empty table.
 */
import assert from "node:assert/strict";
import { decodeEvent, encodeEvent } from "../../src/tuning/event.ts";
import { GLOBAL_NETNS } from "../../src/kernel/netns.ts";
import { parseStatTable, statGauge } from "../../src/kernel/proc/stat_table.ts";
import { neighTableTuner, NT_KIND } from "../../src/tuners/neigh_table.ts";
import { NEARLY_EMPTY_SUSTAIN_MS } from "../../src/tuners/neigh_table_rules.ts";
import { FakeTunerContext, startTuner } from "../support/fake_context.ts";
import type { BpfObject } from "../../src/libbpf/object.ts";

const T = (f: string, i: number) => `net.${f}.neigh.default.gc_thresh${i}`;

function ipv4Only() {
  return { [T("ipv4", 1)]: 16, [T("ipv4", 2)]: 32, [T("ipv4", 3)]: 64 };
}

function nearFull(af: number, entries: number, flags = 0) {
  const data = new Uint8Array(64);
  const dv = new DataView(data.buffer);
  dv.setBigUint64(0, BigInt(af), true);
  dv.setBigUint64(8, BigInt(entries), true);
  const ev = decodeEvent(encodeEvent({ tuner: 3, kind: NT_KIND.NT_NEAR_FULL, flags }));
  // dev name "lo" at byte 48 of the payload; ifindex 1 in v[5]
  data.set(new TextEncoder().encode("lo"), 48);
  dv.setBigUint64(40, 1n, true);
  return { ...ev, values: [...Array(8)].map((_, i) => dv.getBigUint64(i * 8, true)), data };
}

/** The tuner started on the host's thresholds `values`; `value()` reads one back. */
function start(values: Record<string, number>) {
  const ctx = new FakeTunerContext(neighTableTuner.name);
  for (const [sysctl, v] of Object.entries(values)) ctx.set(sysctl, [v]);
  const { tuner: t } = startTuner(neighTableTuner, ctx);
  const logs = () => ctx.lines.map((l) => l.msg);
  const value = (sysctl: string) => ctx.values.get(`${GLOBAL_NETNS}\0${sysctl}`)?.[0];
  return { ctx, t, proposals: ctx.proposals, logs, value };
}

Deno.test("neigh_table glue: IPv6 thresholds absent: ARP is tuned, ND events are ignored", () => {
  const f = start(ipv4Only());
  assert.ok(f.logs().some((l) => /IPv6 neighbour thresholds absent/.test(l)));
  f.t.onEvent!(nearFull(10, 1000));
  assert.equal(f.proposals.length, 0);
  f.t.onEvent!(nearFull(2, 60));
  assert.deepEqual(
    f.proposals.map((p) => [p.sysctl, p.from[0], p.to[0], p.netns, p.tuner]),
    [
      [T("ipv4", 1), 16, 20, "global", "neigh_table"],
      [T("ipv4", 2), 32, 40, "global", "neigh_table"],
      [T("ipv4", 3), 64, 80, "global", "neigh_table"],
    ],
  );
  assert.match(f.proposals[2].reason, /^updated thresholds for arp_cache table, dev 'lo'/);
  // The event is stale now (thresh3 grew to 80, 60 entries are not within 1/4): nothing more.
  f.t.onEvent!(nearFull(2, 59));
  assert.equal(f.proposals.length, 3);
  // A refused entry grows whatever the count says.
  f.t.onEvent!(nearFull(2, 10, 1));
  assert.equal(f.proposals.length, 6);
});

Deno.test("neigh_table glue: without readable IPv4 thresholds the tuner cannot start", () => {
  assert.throws(() => start({}), /net\.ipv4\.neigh\.default\.gc_thresh1\.\.3 cannot be read/);
});

Deno.test("neigh_table glue: an admin override stops thresh1..3 alike, logged once", () => {
  const f = start(ipv4Only());
  f.ctx.tunerOverrides.add(GLOBAL_NETNS);
  f.t.onEvent!(nearFull(2, 64));
  f.t.onEvent!(nearFull(2, 64));
  assert.equal(f.proposals.length, 0);
  assert.equal(f.logs().filter((l) => /administrator took over/.test(l)).length, 1);
});

/** The tuner reads the host's table size from /proc: this needs it nearly empty at thresh3 100. */
function hostArpEntries(): number {
  const t = parseStatTable(Deno.readTextFileSync("/proc/net/stat/arp_cache"));
  return t ? statGauge(t, "entries") ?? 0 : 0;
}

Deno.test({
  name: "neigh_table glue: shrink only after the table stayed nearly empty, to the start values",
  ignore: hostArpEntries() > 16,
  fn() {
    const f = start(ipv4Only());
    f.t.onEvent!(nearFull(2, 64));
    f.t.onEvent!(nearFull(2, 80));
    const grown = f.value(T("ipv4", 3));
    assert.equal(grown, 100);
    const empty = { ...nearFull(2, 0), kind: NT_KIND.NT_NEAR_EMPTY };
    f.t.onEvent!(empty);
    const before = f.proposals.length;
    f.ctx.clock = NEARLY_EMPTY_SUSTAIN_MS - 1;
    f.t.onTick!();
    assert.equal(f.proposals.length, before, "not yet");
    f.ctx.clock = NEARLY_EMPTY_SUSTAIN_MS;
    f.t.onTick!();
    const shrunk = f.proposals.slice(before);
    assert.ok(shrunk.length >= 1, "shrinks once the streak lasted");
    assert.ok(shrunk.every((p) => p.scenario === "neighbour table nearly empty"));
    for (let i = 0; i < 20; i++) f.t.onTick!();
    assert.deepEqual([1, 2, 3].map((i) => f.value(T("ipv4", i))), [16, 32, 64], "back at start");
  },
});

Deno.test("neigh_table glue: gc_thresh3 is copied into the config every 10 s only for the classic tracepoint", () => {
  for (const kind of ["tp_btf", "tracepoint"] as const) {
    const f = start(ipv4Only());
    let updates = 0;
    const obj = { map: () => ({ update: () => updates++ }) } as unknown as BpfObject;
    f.t.configure!(obj);
    f.t.onAttached!(["neigh_create"], new Map([["neigh_create", kind]]));
    const before = updates;
    const reads = f.ctx.visits.length;
    for (let i = 0; i < 20; i++) f.t.onTick!();
    assert.equal(updates - before, kind === "tracepoint" ? 2 : 0, kind);
    if (kind === "tp_btf") assert.equal(f.ctx.visits.length, reads, "no sysctl read either");
  }
});
