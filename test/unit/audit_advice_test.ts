import assert from "node:assert/strict";
import { adviceFindings, adviceId, mergeFindings } from "../../src/audit/advice_findings.ts";
import type { AdviceProposal } from "../../src/audit/advise.ts";
import type { SysctlSource } from "../../src/audit/sysctl_source.ts";
import type { Finding } from "../../src/audit/types.ts";

function proposal(p: Partial<AdviceProposal>): AdviceProposal {
  return {
    tuner: "tcp_buffer",
    scenario: "need to increase TCP buffer size(s)",
    sysctl: "net.ipv4.tcp_rmem",
    netns: "host",
    from: [4096, 131072, 6291456],
    to: [4096, 131072, 7864320],
    reason: "need to increase max buffer size to maximize throughput",
    count: 1,
    ...p,
  };
}

const live: SysctlSource = {
  origin: "live",
  get: (name) =>
    name === "net.ipv4.tcp_rmem"
      ? { kind: "value", value: "4096 131072 6291456" }
      : { kind: "missing" },
};

function staticRmem(recommendedMax: number): Finding {
  return {
    id: "BPFP-TCP-RMEM-MAX",
    severity: "info",
    title: "TCP receive buffer maximum (tcp_rmem max) limits throughput",
    tunable: "net.ipv4.tcp_rmem",
    netns: "host",
    current: [4096, 131072, 6291456],
    recommended: [4096, 131072, recommendedMax],
    evidence: [{ observed: "static", count: null, period: "current" }],
    sysctlW: "",
    sources: ["static"],
  };
}

Deno.test("advice: a tcp_rmem raise becomes BPFP-TCP-RMEM-MAX with the highest target and summed count", () => {
  const f = adviceFindings([
    proposal({ count: 3 }),
    proposal({ count: 5, to: [4096, 131072, 9830400] }),
    proposal({ count: 2 }),
  ], live);
  assert.equal(f.length, 1);
  assert.equal(f[0].id, "BPFP-TCP-RMEM-MAX");
  assert.deepEqual(f[0].recommended, [4096, 131072, 9830400]);
  assert.deepEqual(f[0].current, [4096, 131072, 6291456]);
  assert.deepEqual(f[0].evidence, [{
    observed: "tcp_buffer: need to increase max buffer size to maximize throughput",
    count: 10,
    period: "window",
  }]);
  assert.equal(f[0].severity, "warning");
  assert.deepEqual(f[0].sources, ["observed"]);
  assert.equal(f[0].sysctlW, 'sysctl -w net.ipv4.tcp_rmem="4096 131072 9830400"');
});

Deno.test("advice: other namespaces stay separate findings; no-op proposals are dropped", () => {
  const f = adviceFindings([
    proposal({ netns: "4026532001" }),
    proposal({}),
    proposal({
      sysctl: "net.ipv4.tcp_wmem",
      to: [4096, 16384, 4194304],
      from: [4096, 16384, 4194304],
    }),
  ], live);
  assert.deepEqual(f.map((x) => [x.id, x.netns]).sort(), [
    ["BPFP-TCP-RMEM-MAX", "4026532001"],
    ["BPFP-TCP-RMEM-MAX", "host"],
  ]);
  // The live value is only read for the host namespace; other namespaces show the tuner's view.
  const other = f.find((x) => x.netns !== "host")!;
  assert.deepEqual(other.current, [4096, 131072, 6291456]);
});

Deno.test("advice: exhaustion scenarios are critical; unknown sysctls get a derived stable ID", () => {
  const f = adviceFindings([
    proposal({
      sysctl: "net.ipv4.tcp_mem",
      scenario: "approaching TCP memory exhaustion",
      from: [1, 2, 3],
      to: [1, 2, 4],
    }),
    proposal({
      sysctl: "net.ipv4.tcp_no_metrics_save",
      from: [0],
      to: [1],
      scenario: "low memory",
    }),
  ], null);
  const byId = new Map(f.map((x) => [x.id, x]));
  assert.equal(byId.get("BPFP-TCP-MEM-PRESSURE")?.severity, "critical");
  assert.ok(byId.has("BPFP-TUNER-NET-IPV4-TCP-NO-METRICS-SAVE"));
  assert.equal(adviceId("net.ipv4.tcp_no_metrics_save"), "BPFP-TUNER-NET-IPV4-TCP-NO-METRICS-SAVE");
  assert.equal(adviceId("net.core.rmem_max"), "BPFP-UDP-RCVBUF-ERRORS");
});

Deno.test("advice: a flip from raise to lower keeps the last proposal and says so", () => {
  const f = adviceFindings([
    proposal({ to: [4096, 131072, 7864320] }),
    proposal({
      scenario: "need to decrease TCP buffer size due to latency",
      reason: "correlation between buffer size increase and latency",
      to: [4096, 131072, 4718592],
    }),
  ], live);
  assert.equal(f.length, 1);
  assert.deepEqual(f[0].recommended, [4096, 131072, 4718592]);
  assert.ok(f[0].evidence.some((e) => /both raised and lowered/.test(e.observed)));
});

Deno.test("advice: flow_limit_cpu_bitmap is written as the hex mask the kernel parses", () => {
  const f = adviceFindings([
    proposal({
      tuner: "net_buffer",
      sysctl: "net.core.flow_limit_cpu_bitmap",
      from: [0],
      to: [16],
    }),
  ], null);
  assert.equal(f[0].id, "BPFP-NETDEV-FLOW-LIMIT");
  assert.equal(f[0].sysctlW, "sysctl -w net.core.flow_limit_cpu_bitmap=10");
});

Deno.test("merge: static and observed findings for one ID become one, with the higher raise", () => {
  const observed = adviceFindings([proposal({ to: [4096, 131072, 16777216], count: 4 })], live);
  const merged = mergeFindings([staticRmem(12582912)], observed);
  assert.equal(merged.length, 1);
  assert.deepEqual(merged[0].recommended, [4096, 131072, 16777216]);
  assert.deepEqual(merged[0].sources, ["static", "observed"]);
  assert.equal(merged[0].severity, "warning");
  assert.equal(merged[0].evidence.length, 2);
  assert.equal(merged[0].sysctlW, 'sysctl -w net.ipv4.tcp_rmem="4096 131072 16777216"');

  const lowerObserved = mergeFindings([staticRmem(33554432)], observed);
  assert.deepEqual(
    lowerObserved[0].recommended,
    [4096, 131072, 33554432],
    "a higher static raise is kept",
  );
});

Deno.test("merge: an observed lowering wins over a static raise (live evidence)", () => {
  const observed = adviceFindings([proposal({ to: [4096, 131072, 4718592] })], live);
  const merged = mergeFindings([staticRmem(12582912)], observed);
  assert.deepEqual(merged[0].recommended, [4096, 131072, 4718592]);
});

Deno.test("merge: findings are ordered worst first, then by ID", () => {
  const observed = adviceFindings([
    proposal({ sysctl: "net.core.netdev_max_backlog", from: [1000], to: [1250] }),
    proposal({
      sysctl: "net.ipv4.tcp_mem",
      scenario: "approaching TCP memory exhaustion",
      from: [1, 2, 3],
      to: [1, 2, 4],
    }),
  ], null);
  const merged = mergeFindings([staticRmem(12582912)], observed);
  assert.deepEqual(merged.map((f) => [f.severity, f.id]), [
    ["critical", "BPFP-TCP-MEM-PRESSURE"],
    ["warning", "BPFP-NETDEV-BACKLOG-DROPS"],
    ["info", "BPFP-TCP-RMEM-MAX"],
  ]);
});

Deno.test("a finding in another namespace says how to run its sysctl -w there", async () => {
  const { inNetnsLine } = await import("../../src/audit/advice_findings.ts");
  const line = 'sysctl -w net.ipv4.tcp_rmem="4096 16384 81920"';
  assert.equal(inNetnsLine("host", line), line);
  assert.equal(inNetnsLine("web", line), `ip netns exec web ${line}`);
  assert.match(inNetnsLine("ns:4026532177", line), /# inside network namespace inode 4026532177$/);
});
