import assert from "node:assert/strict";
import { INT_MAX } from "../../src/tuning/domain.ts";
import {
  KERNEL_DEFAULT_MAX_SIZE,
  MAX_SIZE,
  maxSizeDecision,
  ROUTE_TABLE_SCENARIOS,
  ROUTE_TABLE_TUNABLES,
  routeMemoryCeiling,
  unavailableReason,
} from "../../src/tuners/route_table_rules.ts";
import { routeTableTuner } from "../../src/tuners/route_table.ts";
import { unavailableOnThisKernel } from "../../src/tuning/tuner.ts";
import { KernelBtf } from "../../src/libbpf/btf.ts";
import { kernelVersion } from "../../src/kernel/memory.ts";

Deno.test("route_table: bpftune's tunable and scenario, per namespace, optional", () => {
  assert.deepEqual(ROUTE_TABLE_TUNABLES, [
    {
      sysctl: "net.ipv6.route.max_size",
      values: 1,
      scope: "netns",
      optional: true,
      domain: { min: 1, max: INT_MAX },
    },
  ]);
  assert.equal(ROUTE_TABLE_SCENARIOS[0].name, "destination table nearly full");
  assert.equal(routeTableTuner.id, 6);
});

Deno.test("route_table: unavailable from 6.3 on (not enforced) and without IPv6, else available", () => {
  assert.equal(unavailableReason({ major: 5, minor: 10 }, true), null);
  assert.equal(unavailableReason({ major: 6, minor: 1 }, true), null);
  assert.equal(unavailableReason({ major: 6, minor: 2 }, true), null);
  for (const k of [{ major: 6, minor: 3 }, { major: 6, minor: 18 }, { major: 7, minor: 0 }]) {
    assert.match(
      unavailableReason(k, true)!,
      /^net\.ipv6\.route\.max_size is not enforced by this kernel \(Linux 6\.3 and later/,
    );
  }
  assert.match(unavailableReason({ major: 5, minor: 10 }, false)!, /IPv6 is disabled/);
  // This machine runs 6.18: the definition itself says so, before any hook is tried.
  const k = kernelVersion();
  if (k.major > 6 || (k.major === 6 && k.minor >= 3)) {
    assert.match(unavailableOnThisKernel(routeTableTuner)!, /not enforced by this kernel/);
  }
});

Deno.test("route_table: a stable kernel with 6.3's removal backported (dst_ops.gc void) is unavailable", () => {
  const backported = unavailableReason({ major: 5, minor: 10 }, true, () => false);
  assert.match(
    backported!,
    /^net\.ipv6\.route\.max_size is not enforced by this kernel \(its IPv6 dst garbage collector, dst_ops\.gc, returns nothing/,
  );
  assert.equal(unavailableReason({ major: 6, minor: 1 }, true, () => true), null);
  assert.equal(
    unavailableReason({ major: 6, minor: 1 }, true, () => null),
    null,
    "no BTF: hooks decide",
  );
  // The BTF question is asked only where the version leaves it open.
  let asked = 0;
  const ask = () => (asked++, false);
  unavailableReason({ major: 6, minor: 18 }, true, ask);
  unavailableReason({ major: 5, minor: 10 }, false, ask);
  assert.equal(asked, 0);
});

Deno.test("KernelBtf.functionPointerReturnsVoid: this kernel's dst_ops (6.18: gc void, check not)", () => {
  const btf = KernelBtf.load();
  if (btf === null) return; // a kernel without BTF: nothing to read
  try {
    assert.equal(btf.functionPointerReturnsVoid("dst_ops", "gc"), true);
    assert.equal(btf.functionPointerReturnsVoid("dst_ops", "check"), false);
    assert.equal(btf.functionPointerReturnsVoid("dst_ops", "gc_thresh"), null, "not a pointer");
    assert.equal(btf.functionPointerReturnsVoid("dst_ops", "no_such_member"), null);
    assert.equal(btf.functionPointerReturnsVoid("no_such_struct_bpfp", "gc"), null);
  } finally {
    btf.close();
  }
});

Deno.test("unavailableOnThisKernel: a failing check is a reason, not a crash", () => {
  const def = {
    ...routeTableTuner,
    unavailable: () => {
      throw new Error("boom");
    },
  };
  assert.equal(unavailableOnThisKernel(def), "cannot tell whether it can work here: boom");
  assert.equal(unavailableOnThisKernel({ ...routeTableTuner, unavailable: undefined }), null);
});

Deno.test("maxSizeDecision: grows by the learning rate when nearly full, bpftune's line", () => {
  const d = maxSizeDecision({ live: [4096], entries: 4000, rate: 4, ceiling: 1 << 20 });
  assert.deepEqual(d, {
    kind: "change",
    proposal: {
      scenario: "destination table nearly full",
      sysctl: MAX_SIZE,
      from: [4096],
      to: [5120],
      reason: "Due to dst table filling up, change net.ipv6.route.max_size from 4096 -> 5120",
    },
  });
  assert.equal(maxSizeDecision({ live: [4096], entries: 3000, rate: 4, ceiling: 1 << 20 }), null);
  assert.notEqual(
    maxSizeDecision({ live: [4096], entries: 5000, rate: 0, ceiling: 1 << 20 }),
    null,
  );
});

Deno.test("maxSizeDecision: clamped, then at its ceiling; implausible input gives nothing", () => {
  const clamped = maxSizeDecision({ live: [4096], entries: 4096, rate: 4, ceiling: 4500 });
  assert.equal(clamped?.kind === "change" && clamped.proposal.to[0], 4500);
  assert.deepEqual(maxSizeDecision({ live: [4500], entries: 4500, rate: 4, ceiling: 4500 }), {
    kind: "at-ceiling",
    sysctl: MAX_SIZE,
    value: [4500],
    ceiling: 4500,
  });
  assert.equal(maxSizeDecision({ live: [0], entries: 10, rate: 4, ceiling: 4500 }), null);
  assert.equal(maxSizeDecision({ live: [], entries: 10, rate: 4, ceiling: 4500 }), null);
  assert.equal(maxSizeDecision({ live: [10], entries: NaN, rate: 4, ceiling: 4500 }), null);
  const tiny = maxSizeDecision({ live: [2], entries: 2, rate: 4, ceiling: 4500 });
  assert.equal(tiny?.kind === "change" && tiny.proposal.to[0], 3, "grows by at least one");
});

Deno.test("routeMemoryCeiling: 1/64 of memory at 256 bytes an entry, at least 4096", () => {
  assert.equal(routeMemoryCeiling(8 * 1024 ** 3), 524288);
  assert.equal(routeMemoryCeiling(1024 * 1024), KERNEL_DEFAULT_MAX_SIZE);
  assert.equal(routeMemoryCeiling(0), KERNEL_DEFAULT_MAX_SIZE);
  assert.ok(routeMemoryCeiling(Number.MAX_SAFE_INTEGER) <= INT_MAX);
});
