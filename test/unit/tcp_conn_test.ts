import assert from "node:assert/strict";
import { decodeEvent, encodeEvent } from "../../src/tuning/event.ts";
import { choiceSummary, decodeSample, pathKey } from "../../src/tuners/tcp_conn.ts";
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
