import assert from "node:assert/strict";
import { decodeEvent, encodeEvent } from "../../src/tuning/event.ts";
import {
  choiceSummary,
  decodeSample,
  handsOffKeys,
  pathKey,
  TCP_CONN_OVERRIDDEN_BY,
  tcpConnTuner,
} from "../../src/tuners/tcp_conn.ts";
import { overrideSysctls } from "../../src/tuning/tuner.ts";
import { ownNetnsInum } from "../../src/kernel/netns.ts";
import type { BpfObject } from "../../src/libbpf/object.ts";
import { FakeTunerContext } from "../support/fake_context.ts";
import { contract } from "../../dist/bpf/tcp_conn.contract.ts";
import { SAMPLE_FLAG } from "../../src/tuners/tcp_conn_learner.ts";
import { parseCongestionList } from "../../src/kernel/congestion.ts";

/** A sample laid out as bpf/tcp_conn.bpf.c `struct tc_sample` fills the event payload. */
function sampleEvent(): Uint8Array {
  const bytes = encodeEvent({ tuner: 7, kind: contract.kinds.TC_SAMPLE, netns: 4026531840n });
  const data = new DataView(bytes.buffer, 32, 64);
  const addr = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 1, 2];
  addr.forEach((b, i) => data.setUint8(i, b));
  new TextEncoder().encode("cubic").forEach((b, i) => data.setUint8(16 + i, b));
  data.setUint32(32, 180, true); // min_rtt_us
  data.setUint32(36, SAMPLE_FLAG.learned | SAMPLE_FLAG.forced, true);
  data.setUint32(40, 20, true); // delivered
  data.setUint32(44, 2000, true); // interval us
  data.setUint32(48, 1448, true); // mss
  data.setUint32(52, 12, true); // total_retrans
  data.setUint32(56, 600, true); // segs_out
  return bytes;
}

Deno.test("a sample event decodes into the learner's terms", () => {
  const s = decodeSample(decodeEvent(sampleEvent()));
  assert.deepEqual(s, {
    netns: "ns:4026531840",
    addr: "10.77.1.2",
    initial: "cubic",
    flags: SAMPLE_FLAG.learned | SAMPLE_FLAG.forced,
    minRttUs: 180,
    rate: 14_480_000,
    retrans: 12,
    segsOut: 600,
    connections: 1,
  });
});

Deno.test("the BPF path key: netns inode then the 16-byte address", () => {
  const addr = new Uint8Array(16).fill(7);
  const k = pathKey(5n, addr);
  assert.equal(k.length, 24);
  assert.equal(new DataView(k.buffer).getBigUint64(0, true), 5n);
  assert.deepEqual(k.subarray(8), addr);
});

Deno.test("summary: bpftune's header and one line per algorithm, then the loss switches", () => {
  const lines = choiceSummary(new Map([["cubic", 3], ["bbr", 12], ["reno", 0]]), 9);
  assert.deepEqual(lines.slice(0, 4), [
    "# Summary: tcp_conn_tuner:              CongAlg                Count",
    "# Summary: tcp_conn_tuner:                cubic                    3",
    "# Summary: tcp_conn_tuner:                  bbr                   12",
    "# Summary: tcp_conn_tuner:                 reno                    0",
  ]);
  assert.match(lines[4], /switched 9 connections to bbr as they retransmitted more than 1\/64/);
  assert.equal(choiceSummary(new Map([["bbr", 0]]), 0).length, 2, "bbr is always listed");
});

Deno.test("the kernel's algorithm list: names only", () => {
  assert.deepEqual(parseCongestionList("reno cubic bbr\n"), ["reno", "cubic", "bbr"]);
  assert.deepEqual(parseCongestionList("  "), []);
  assert.deepEqual(parseCongestionList("cubic ../x bbr"), ["cubic", "bbr"]);
});

/** Maps of a stand-in object: what the tuner writes to tc_algs, bpfp_config and tc_paths. */
function mapsObject() {
  const maps = new Map<string, Map<string, Uint8Array>>();
  const hex = (k: Uint8Array) => Array.from(k, (b) => b.toString(16).padStart(2, "0")).join("");
  const map = (name: string) => {
    if (!maps.has(name)) maps.set(name, new Map());
    const m = maps.get(name)!;
    return {
      update: (k: Uint8Array, v: Uint8Array) => void m.set(hex(k), v.slice()),
      delete: (k: Uint8Array) => m.delete(hex(k)),
      sumU64: () => 0n,
    };
  };
  return { object: { map } as unknown as BpfObject, maps };
}

Deno.test("glue: samples in, the path's choice out to tc_paths, the table and metrics", () => {
  const ctx = new FakeTunerContext("tcp_conn");
  const tuner = tcpConnTuner.create(ctx);
  const { object, maps } = mapsObject();
  tuner.configure!(object);
  const algs = [...maps.get("tc_algs")!.values()].map((v) => new TextDecoder().decode(v));
  assert.ok(algs.length >= 1, "the kernel's algorithms are written for the BPF side");
  const cfg = new DataView(maps.get("bpfp_config")!.values().next().value!.buffer);
  assert.equal(cfg.getUint32(contract.config.flags.offset, true), 0, "not advising");
  assert.equal(Number(cfg.getBigUint64(contract.params.loss_shift.offset, true)), 6);
  // Connections to 10.77.1.2 that had to be switched to bbr for loss.
  const lossy = sampleEvent();
  for (let i = 0; i < 6; i++) tuner.onEvent!(decodeEvent(lossy));
  const rows = tuner.tables!()[0].rows;
  assert.equal(rows.length, 1);
  assert.equal(rows[0].address, "10.77.1.2");
  assert.equal(rows[0].count, 6);
  assert.equal(rows[0].forced, 6);
  assert.deepEqual(rows[0].ran, { bbr: 6 });
  const available = algs.map((a) => a.replace(/\0+$/, ""));
  if (available.includes("bbr") && available.includes("cubic")) {
    assert.notEqual(rows[0].algorithm, "cubic", "never the algorithm that had to be rescued");
    assert.equal(maps.get("tc_paths")!.size, 1, "the choice reached the BPF side");
  }
  const metrics = tuner.metrics!();
  assert.ok(metrics.some((m) => m.name === "tcp_conn_paths" && m.value === 1));
});

Deno.test("overrides: bpftune's four congestion control sysctls take tcp_conn over", () => {
  assert.deepEqual(overrideSysctls(tcpConnTuner), [...TCP_CONN_OVERRIDDEN_BY]);
  assert.equal(TCP_CONN_OVERRIDDEN_BY.length, 4);
  const cc = "net.ipv4.tcp_congestion_control";
  assert.deepEqual(handsOffKeys([{ netns: "ns:42", sysctl: cc }]), [42n], "that namespace");
  assert.deepEqual(handsOffKeys([{ netns: "global", sysctl: cc }]), [ownNetnsInum()]);
  assert.deepEqual(handsOffKeys([{ netns: "any", sysctl: cc }]), [0n], "every namespace");
  assert.deepEqual(
    handsOffKeys([{ netns: "ns:42", sysctl: "net.ipv4.tcp_allowed_congestion_control" }]),
    [0n],
    "a host-wide sysctl: every namespace, whichever wrote it",
  );
  assert.deepEqual(handsOffKeys([]), []);
});

Deno.test("glue: tc_hands_off follows the overrides; only_netns is --netns's inode", () => {
  const ctx = new FakeTunerContext("tcp_conn");
  ctx.onlyNetns = "ns:77";
  const tuner = tcpConnTuner.create(ctx);
  const { object, maps } = mapsObject();
  ctx.takenOver = [{ netns: "ns:42", sysctl: "net.ipv4.tcp_congestion_control" }];
  tuner.configure!(object);
  const cfg = new DataView(maps.get("bpfp_config")!.values().next().value!.buffer);
  assert.equal(cfg.getBigUint64(contract.params.only_netns.offset, true), 77n);
  const handsOff = () =>
    [...maps.get("tc_hands_off")?.keys() ?? []].map((hex) =>
      new DataView(Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16)).buffer)
        .getBigUint64(0, true)
    );
  // The BPF side looks tc_hands_off up only while the config says it holds keys.
  const keysInConfig = () =>
    new DataView(maps.get("bpfp_config")!.values().next().value!.buffer)
      .getBigUint64(contract.params.hands_off.offset, true);
  assert.deepEqual(handsOff(), [42n]);
  assert.equal(keysInConfig(), 1n);
  assert.ok(ctx.lines.some((l) => /leaving new connections' congestion control alone/.test(l.msg)));
  // Ticks while the overrides stay as they were do not copy them (the idle daemon's cost).
  const asked = ctx.takenOverAsked;
  tuner.onTick!();
  tuner.onTick!();
  assert.equal(ctx.takenOverAsked, asked, "unchanged overrides are not asked for again");
  ctx.takenOver = [];
  tuner.onTick!();
  assert.equal(ctx.takenOverAsked, asked + 1, "a new version is");
  assert.deepEqual(handsOff(), [], "enable lifts it");
  assert.equal(keysInConfig(), 0n, "and the lookups stop");
  assert.ok(ctx.lines.some((l) => /choosing congestion control again/.test(l.msg)));
});
