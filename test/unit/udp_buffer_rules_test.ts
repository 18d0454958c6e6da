import assert from "node:assert/strict";
import {
  type Decision,
  dropRateLine,
  dropRatePerMille,
  rcvqFullDecisions,
  type RcvqFullInput,
  UDP_BUFFER_MAX,
  UDP_BUFFER_SCENARIOS,
  UDP_BUFFER_TUNABLES,
  UDP_SYSCTL,
  udpMemDecision,
} from "../../src/tuners/udp_buffer_rules.ts";
import { grownPool } from "../../src/tuners/memory_pool.ts";

const base: RcvqFullInput = {
  rmemMax: 16384,
  rmemDefault: 16384,
  observedRcvbuf: 16384,
  userLocked: false,
  memory: "normal",
  rate: 4,
};

function changes(ds: Decision[]) {
  return ds.map((d) => {
    assert.equal(d.kind, "change");
    return d.kind === "change" ? d.proposal : null!;
  });
}

Deno.test("bpftune's tunables and scenario names are kept", () => {
  assert.deepEqual(UDP_BUFFER_TUNABLES.map((t) => t.sysctl), [
    "net.ipv4.udp_mem",
    "net.core.rmem_max",
    "net.core.rmem_default",
  ]);
  assert.ok(UDP_BUFFER_TUNABLES.every((t) => t.scope === "global"));
  assert.deepEqual(UDP_BUFFER_SCENARIOS.map((s) => s.name), [
    "need to increase UDP buffer size(s)",
    "need to decrease UDP buffer size(s)",
    "approaching UDP memory pressure",
    "approaching UDP memory exhaustion",
  ]);
});

Deno.test("a full receive queue at rmem_default grows rmem_max first, then rmem_default", () => {
  const [max, def] = changes(rcvqFullDecisions(base));
  assert.equal(max.sysctl, UDP_SYSCTL.rmemMax);
  assert.deepEqual([max.from, max.to], [[16384], [20480]]);
  assert.equal(def.sysctl, UDP_SYSCTL.rmemDefault);
  assert.deepEqual([def.from, def.to], [[16384], [20480]]);
  assert.equal(
    def.reason,
    "Due to need to increase receive buffer size to maximize throughput change " +
      "net.core.rmem_default from 16384 -> 20480",
  );
  assert.equal(def.scenario, "need to increase UDP buffer size(s)");
});

Deno.test("more drops folded into one event grow rmem_default further (shared proportional growth)", () => {
  const one = changes(rcvqFullDecisions({ ...base, hits: 1 }));
  const many = changes(rcvqFullDecisions({ ...base, hits: 64 }));
  const last = (d: { to: number[] }[]) => d[d.length - 1].to[0];
  assert.ok(last(many) > last(one), `${last(many)} > ${last(one)}`);
  assert.ok(last(many) <= 4 * base.rmemDefault, "never more than 4x in one change");
});

Deno.test("rmem_max is left alone while it is above the grown default", () => {
  const ds = changes(
    rcvqFullDecisions({ ...base, rmemMax: 4194304, rmemDefault: 212992, observedRcvbuf: 212992 }),
  );
  assert.deepEqual(ds.map((p) => p.sysctl), [UDP_SYSCTL.rmemDefault]);
  assert.deepEqual(ds[0].to, [266240]);
});

Deno.test("never for SO_RCVBUF sockets, near memory pressure, or sockets older than a growth", () => {
  assert.deepEqual(rcvqFullDecisions({ ...base, userLocked: true }), []);
  assert.deepEqual(rcvqFullDecisions({ ...base, memory: "under-pressure" }), []);
  assert.deepEqual(rcvqFullDecisions({ ...base, memory: "near-exhaustion" }), []);
  // The default already grew past this socket's size: no evidence for more.
  assert.deepEqual(rcvqFullDecisions({ ...base, rmemDefault: 32768, rmemMax: 32768 }), []);
});

Deno.test("growth is bounded to [8 KiB, 256 MiB] and reports the ceiling", () => {
  const small = changes(
    rcvqFullDecisions({ ...base, rmemMax: 1024, rmemDefault: 1024, observedRcvbuf: 1024 }),
  );
  assert.ok(small.every((p) => p.to[0] === 8192));
  const near = changes(rcvqFullDecisions({
    ...base,
    rmemMax: UDP_BUFFER_MAX - 1000,
    rmemDefault: UDP_BUFFER_MAX - 1000,
    observedRcvbuf: UDP_BUFFER_MAX - 1000,
  }));
  assert.ok(near.every((p) => p.to[0] === UDP_BUFFER_MAX));
  const at = rcvqFullDecisions({
    ...base,
    rmemMax: UDP_BUFFER_MAX,
    rmemDefault: UDP_BUFFER_MAX,
    observedRcvbuf: UDP_BUFFER_MAX,
  });
  assert.deepEqual(at, [{
    kind: "at-ceiling",
    sysctl: UDP_SYSCTL.rmemDefault,
    value: [UDP_BUFFER_MAX],
    ceiling: UDP_BUFFER_MAX,
  }]);
});

Deno.test("implausible input gives no decision", () => {
  assert.deepEqual(rcvqFullDecisions({ ...base, rmemMax: 0 }), []);
  assert.deepEqual(rcvqFullDecisions({ ...base, observedRcvbuf: -1 }), []);
  assert.deepEqual(rcvqFullDecisions({ ...base, rmemDefault: NaN }), []);
});

Deno.test("udp_mem: exhaustion grows only the max; pressure grows all three within nfbp caps", () => {
  const nfbp = 1_000_000;
  const ex = udpMemDecision({
    udpMem: [1000, 2000, 4000],
    allocatedPages: 3990,
    underPressure: false,
    freeBufferPages: nfbp,
    rate: 4,
  });
  assert.equal(ex?.kind, "change");
  if (ex?.kind === "change") {
    assert.deepEqual(ex.proposal.to, [1000, 2000, 5000]);
    assert.equal(ex.proposal.scenario, "approaching UDP memory exhaustion");
    assert.equal(
      ex.proposal.reason,
      "Due to near memory exhaustion change net.ipv4.udp_mem(min pressure max) from " +
        "(1000 2000 4000) -> (1000 2000 5000)",
    );
  }
  const pr = udpMemDecision({
    udpMem: [1000, 2000, 4000],
    allocatedPages: 10,
    underPressure: true,
    freeBufferPages: nfbp,
    rate: 4,
  });
  assert.equal(pr?.kind === "change" && pr.proposal.scenario, "approaching UDP memory pressure");
  assert.deepEqual(pr?.kind === "change" && pr.proposal.to, [1250, 2500, 5000]);
  assert.equal(
    udpMemDecision({
      udpMem: [1000, 2000, 4000],
      allocatedPages: 10,
      underPressure: false,
      freeBufferPages: nfbp,
      rate: 4,
    }),
    null,
  );
  assert.equal(
    udpMemDecision({
      udpMem: [1000, 2000, 4000],
      allocatedPages: 3990,
      underPressure: false,
      freeBufferPages: 0,
      rate: 4,
    }),
    null,
  );
});

Deno.test("udp_mem never gets a 0 where min/pressure are already above their caps (bpftune bug)", () => {
  // nfbp 16000: caps 1000 / 2000 / 4000; min and pressure are above theirs.
  const to = grownPool([5000, 6000, 7000], "under-pressure", 16000, 4);
  assert.deepEqual(to, [5000, 6000, 7000]);
  const d = udpMemDecision({
    udpMem: [5000, 6000, 7000],
    allocatedPages: 6990,
    underPressure: false,
    freeBufferPages: 16000,
    rate: 4,
  });
  assert.deepEqual(d, {
    kind: "at-ceiling",
    sysctl: UDP_SYSCTL.mem,
    value: [5000, 6000, 7000],
    ceiling: 4000,
  });
  for (const state of ["near-exhaustion", "under-pressure", "near-pressure"] as const) {
    const t = grownPool([100, 200, 300], state, 16000, 4);
    assert.ok(t.every((v) => v > 0) && t[0] <= t[1] && t[1] <= t[2], `${state}: ${t}`);
  }
});

Deno.test("drop rate per 1000 datagrams never divides by zero", () => {
  assert.equal(dropRatePerMille(0, 0), 0);
  assert.equal(dropRatePerMille(0, 5), 1000);
  assert.equal(dropRatePerMille(900, 100), 100);
  assert.equal(dropRatePerMille(-1, 3), 0);
  assert.equal(
    dropRateLine("4026531840", 900, 100),
    "netns: 4026531840 UDP in 900, drops 100 drop rate 100",
  );
});
