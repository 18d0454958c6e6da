import assert from "node:assert/strict";
import { INT_MAX } from "../../src/tuning/domain.ts";
import type { RuleProposal } from "../../src/tuning/proposal.ts";
import { parseIfInet6, parseRouteOnLink } from "../../src/kernel/proc/addr_prefixes.ts";
import {
  type Decision,
  FAMILIES,
  familyOfAf,
  growDecisions,
  type GrowInput,
  KERNEL_DEFAULT_THRESH,
  memoryCeiling,
  NEARLY_EMPTY_SUSTAIN_MS,
  NearlyEmptyStreak,
  NEIGH_TABLE_SCENARIOS,
  NEIGH_TABLE_TUNABLES,
  prefixCeiling,
  shrinkDecisions,
} from "../../src/tuners/neigh_table_rules.ts";

const V4 = FAMILIES.ipv4;
const GiB = 1024 ** 3;

function changes(ds: Decision[]): RuleProposal[] {
  return ds.map((d) => {
    assert.equal(d.kind, "change");
    return (d as Extract<Decision, { kind: "change" }>).proposal;
  });
}

function growInput(over: Partial<GrowInput> = {}): GrowInput {
  return {
    fam: V4,
    live: [128, 512, 1024],
    entries: 1000,
    allocFailed: false,
    rate: 4,
    dev: "veth0",
    ifindex: 7,
    prefixes: [{ addrLen: 32, prefixLen: 16 }],
    memoryCeiling: memoryCeiling(8 * GiB),
    fromNetns: null,
    ...over,
  };
}

Deno.test("neigh_table: bpftune's tunables, IPv6 optional, only init_net holds the thresholds", () => {
  assert.equal(NEIGH_TABLE_TUNABLES.length, 10);
  for (const t of NEIGH_TABLE_TUNABLES) {
    assert.equal(t.optional === true, t.sysctl.startsWith("net.ipv6."), t.sysctl);
    assert.equal(t.scope, t.sysctl.endsWith("gc_stale_time") ? "netns" : "global", t.sysctl);
  }
  assert.deepEqual(NEIGH_TABLE_SCENARIOS.map((s) => s.name), [
    "neighbour table nearly full",
    "neighbour table grown excessively",
    "neighbour table nearly empty",
  ]);
  assert.equal(familyOfAf(2), V4);
  assert.equal(familyOfAf(10), FAMILIES.ipv6);
  assert.equal(familyOfAf(7), null);
});

Deno.test("prefixCeiling: bpftune's formula (a /24 gives 1024, a /64 no limit, small nets 1024)", () => {
  assert.equal(prefixCeiling([{ addrLen: 32, prefixLen: 24 }]), 1024);
  assert.equal(prefixCeiling([{ addrLen: 32, prefixLen: 30 }]), 1024, "at least 256 * 4");
  assert.equal(prefixCeiling([{ addrLen: 32, prefixLen: 16 }]), 262144);
  assert.equal(
    prefixCeiling([{ addrLen: 32, prefixLen: 24 }, { addrLen: 32, prefixLen: 23 }]),
    1024 + 2048,
  );
  assert.equal(prefixCeiling([{ addrLen: 128, prefixLen: 64 }]), INT_MAX);
  assert.equal(prefixCeiling([{ addrLen: 32, prefixLen: 0 }]), INT_MAX, "capped at INT_MAX");
  assert.equal(prefixCeiling([]), null);
});

Deno.test("memoryCeiling: 1/64 of memory at 512 bytes an entry, never below the kernel default", () => {
  assert.equal(memoryCeiling(8 * GiB), 262144);
  assert.equal(memoryCeiling(16 * 1024 * 1024), 1024);
  assert.equal(memoryCeiling(0), 1024);
  assert.equal(memoryCeiling(Number.NaN), 1024);
});

Deno.test("grow: all three thresholds by the learning rate, one summary line with the device", () => {
  const r = growDecisions(growInput());
  const [t1, t2, t3] = changes(r.decisions);
  assert.deepEqual([t1.sysctl, t2.sysctl, t3.sysctl], V4.thresh);
  assert.deepEqual([t1.from, t1.to, t2.from, t2.to, t3.from, t3.to], [
    [128],
    [160],
    [512],
    [640],
    [1024],
    [1280],
  ]);
  assert.ok(
    r.decisions.every((d) =>
      d.kind === "change" && d.proposal.scenario === "neighbour table nearly full"
    ),
  );
  assert.equal(
    t1.reason,
    "Due to neighbour table nearly full change net.ipv4.neigh.default.gc_thresh1 from (128) -> (160)",
  );
  assert.equal(
    t3.reason,
    "updated thresholds for arp_cache table, dev 'veth0' (ifindex 7) thresh1: 128 to 160, " +
      "thresh2: 512 to 640, thresh3: 1024 to 1280",
  );
  assert.equal(r.excessive, null);
});

Deno.test("grow: only when nearly full, or when the kernel refused an entry", () => {
  assert.deepEqual(growDecisions(growInput({ entries: 700 })).decisions, []);
  assert.equal(growDecisions(growInput({ entries: 768 })).decisions.length, 3, "within 1/4");
  assert.equal(growDecisions(growInput({ entries: 700, rate: 0 })).decisions.length, 0);
  assert.equal(growDecisions(growInput({ entries: 10, allocFailed: true })).decisions.length, 3);
});

Deno.test("grow: the pressure of a container is named, the host-wide table is grown", () => {
  const r = growDecisions(growInput({ fromNetns: "non-global ns (inode 4026532999)" }));
  assert.match(
    changes(r.decisions)[2].reason,
    /; the table is host-wide, the pressure came from non-global ns \(inode 4026532999\)$/,
  );
});

Deno.test("grow: clamped to the prefix ceiling, then at-ceiling with bpftune's scenario-1 line", () => {
  const small = [{ addrLen: 32 as const, prefixLen: 24 }];
  const clamped = changes(
    growDecisions(growInput({ live: [700, 900, 1000], entries: 1000, prefixes: small }))
      .decisions,
  );
  assert.deepEqual(clamped.map((p) => p.to[0]), [875, 1024, 1024], "thresh1 <= thresh2 <= thresh3");
  const at = growDecisions(growInput({ live: [128, 512, 1024], prefixes: small }));
  assert.deepEqual(at.decisions, [{
    kind: "at-ceiling",
    sysctl: "net.ipv4.neigh.default.gc_thresh3",
    value: [1024],
    ceiling: 1024,
  }]);
  assert.equal(
    at.excessive,
    "can no longer update thresholds for gc_thresh[1-3] for table 'arp_cache' for device " +
      "'veth0' (ifindex 7) due to excessive size of table (we computed a reasonable max of 1024 " +
      "based on the prefixlens of the 1 configured addresses). Current thresh1: 128 , " +
      "thresh2: 512 , thresh3: 1024.",
  );
});

Deno.test("grow: an IPv6 /64 gives no prefix limit, the memory ceiling still holds", () => {
  const r = growDecisions(growInput({
    fam: FAMILIES.ipv6,
    live: [2000, 3000, 4096],
    entries: 4096,
    prefixes: [{ addrLen: 128, prefixLen: 64 }],
    memoryCeiling: 4096,
  }));
  assert.equal(r.decisions[0].kind, "at-ceiling");
  assert.match(r.excessive!, /'ndisc_cache'.*based on 1\/64 of this machine's memory/);
});

Deno.test("grow: no device known (classic tracepoint), implausible input gives nothing", () => {
  const r = growDecisions(growInput({ dev: "", ifindex: 0, prefixes: [] }));
  assert.match(changes(r.decisions)[2].reason, /dev \(unknown\) thresh1/);
  assert.deepEqual(growDecisions(growInput({ live: [1, 2, 0] })).decisions, []);
  assert.deepEqual(growDecisions(growInput({ entries: -1 })).decisions, []);
  assert.deepEqual(
    growDecisions(growInput({ live: [1, 2] as unknown as [1, 2, 3] })).decisions,
    [],
  );
});

Deno.test("grow: tiny thresholds still move (growth by at least one)", () => {
  const ds = changes(growDecisions(growInput({ live: [1, 2, 3], entries: 3 })).decisions);
  assert.deepEqual(ds.map((p) => [p.sysctl, p.to[0]]), [["net.ipv4.neigh.default.gc_thresh3", 4]]);
  assert.match(ds[0].reason, /^updated thresholds/, "the one change carries the summary line");
});

Deno.test("shrink: towards the start values, never below them, thresholds kept in order", () => {
  const floor = [128, 512, 1024] as const;
  const ds = changes(
    shrinkDecisions({ fam: V4, live: [200, 800, 2000], entries: 10, floor, rate: 4 }),
  );
  assert.deepEqual(ds.map((p) => [p.from[0], p.to[0]]), [[200, 150], [800, 600], [2000, 1500]]);
  assert.equal(ds[2].scenario, "neighbour table nearly empty");
  assert.equal(
    ds[2].reason,
    "reduced thresholds for arp_cache table, thresh1: 200 to 150, thresh2: 800 to 600, " +
      "thresh3: 2000 to 1500",
  );
  const last = changes(
    shrinkDecisions({ fam: V4, live: [130, 520, 1100], entries: 10, floor, rate: 4 }),
  );
  assert.deepEqual(last.map((p) => p.to[0]), [128, 512, 1024]);
  assert.deepEqual(
    shrinkDecisions({ fam: V4, live: [128, 512, 1024], entries: 0, floor, rate: 4 }),
    [],
    "at the floor",
  );
  assert.deepEqual(
    shrinkDecisions({ fam: V4, live: [200, 800, 2000], entries: 600, floor, rate: 4 }),
    [],
    "not nearly empty",
  );
  // Start values above the kernel defaults (the admin's) are never undercut.
  const admin = [1000, 4000, 8000] as const;
  assert.deepEqual(
    shrinkDecisions({ fam: V4, live: admin, entries: 0, floor: admin, rate: 4 }),
    [],
  );
  // Only the moving thresholds change.
  const partial = changes(
    shrinkDecisions({ fam: V4, live: [128, 512, 2000], entries: 0, floor, rate: 4 }),
  );
  assert.deepEqual(partial.map((p) => p.sysctl), ["net.ipv4.neigh.default.gc_thresh3"]);
  assert.match(partial[0].reason, /^reduced thresholds/);
  assert.deepEqual(KERNEL_DEFAULT_THRESH, [128, 512, 1024]);
});

Deno.test("NearlyEmptyStreak: shrink only after the table stayed nearly empty long enough", () => {
  const s = new NearlyEmptyStreak();
  assert.equal(s.due(0, 0, 2000, 4), false, "no streak without a removal event");
  s.empty(1000);
  s.empty(5000); // later removals do not restart it
  assert.equal(s.due(1000 + NEARLY_EMPTY_SUSTAIN_MS - 1, 10, 2000, 4), false);
  assert.equal(s.due(1000 + NEARLY_EMPTY_SUSTAIN_MS, 10, 2000, 4), true);
  assert.equal(s.due(1000 + NEARLY_EMPTY_SUSTAIN_MS, 900, 2000, 4), false, "filled up again");
  assert.equal(s.active, false);
  s.empty(0);
  s.reset();
  assert.equal(s.due(NEARLY_EMPTY_SUSTAIN_MS * 2, 0, 2000, 4), false, "a full event ends it");
});

Deno.test("addr prefixes: /proc/net/if_inet6 and the on-link routes of /proc/net/route", () => {
  const inet6 = "fe800000000000000000000000000001 07 40 20 80 veth0\n" +
    "20010db8000000000000000000000001 07 30 00 80 veth0\n" +
    "00000000000000000000000000000001 01 80 10 80       lo\n";
  assert.deepEqual(parseIfInet6(inet6, "veth0"), [
    { addrLen: 128, prefixLen: 64 },
    { addrLen: 128, prefixLen: 48 },
  ]);
  assert.deepEqual(parseIfInet6(inet6, "eth9"), []);
  const route =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
    "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
    "eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
    "veth0\t0000000A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n" +
    "veth0\t0000010A\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
  assert.deepEqual(parseRouteOnLink(route, "eth0"), [{ addrLen: 32, prefixLen: 24 }]);
  assert.deepEqual(
    parseRouteOnLink(route, "veth0"),
    [{ addrLen: 32, prefixLen: 16 }],
    "down route",
  );
  assert.deepEqual(parseRouteOnLink("garbage\nx y z", "eth0"), []);
});
