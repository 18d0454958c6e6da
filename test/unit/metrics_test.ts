import assert from "node:assert/strict";
import {
  escapeLabelValue,
  MetricsListenError,
  type MetricsSnapshot,
  parseCpuSeconds,
  parseListenAddress,
  renderMetrics,
} from "../../src/daemon/metrics.ts";
import { VERSION } from "../../src/version.ts";
import {
  familiesByName as parseOpenMetrics,
  type MetricFamily as Family,
} from "../support/openmetrics.ts";

function snapshot(overrides: Partial<MetricsSnapshot> = {}): MetricsSnapshot {
  return {
    tunables: [
      { sysctl: "net.ipv4.tcp_rmem", values: [4096, 131072, 7864320], changes: 2 },
      { sysctl: "net.core.rmem_max", netns: "blue", values: ["212992"], changes: 0 },
    ],
    scenarios: [{ tuner: "tcp_buffer", scenario: "need to increase max buffer size", count: 2 }],
    events: [{ tuner: "tcp_buffer", seen: 120, dropped: 3 }],
    hooks: [
      { tuner: "tcp_buffer", hook: "tcp/tcp_probe", kind: "tracepoint", attached: true },
      { tuner: "tcp_buffer", hook: "tcp_sndbuf_expand", kind: "fentry", attached: false },
    ],
    process: { residentBytes: 52428800, cpuSeconds: 1.25 },
    ...overrides,
  };
}

function family(families: Map<string, Family>, name: string): Family {
  const f = families.get(name);
  assert.ok(f, `family ${name} missing; have ${[...families.keys()].join(", ")}`);
  return f;
}

function valueOf(f: Family, labels: Record<string, string>): string | undefined {
  return f.samples.find((s) =>
    Object.entries(labels).every(([k, v]) => s.labels[k] === v) &&
    Object.keys(s.labels).length === Object.keys(labels).length
  )?.raw;
}

Deno.test("renderMetrics: output parses as OpenMetrics with the documented families", () => {
  const text = renderMetrics(snapshot());
  assert.ok(text.endsWith("\n# EOF\n"));
  const families = parseOpenMetrics(text);

  const value = family(families, "bpfpilot_tunable_value");
  assert.equal(value.type, "gauge");
  assert.ok(value.help);
  assert.equal(
    valueOf(value, { sysctl: "net.ipv4.tcp_rmem", index: "0", netns: "global" }),
    "4096",
  );
  assert.equal(
    valueOf(value, { sysctl: "net.ipv4.tcp_rmem", index: "2", netns: "global" }),
    "7864320",
  );
  assert.equal(
    valueOf(value, { sysctl: "net.core.rmem_max", index: "0", netns: "blue" }),
    "212992",
  );
  assert.equal(value.samples.length, 4);

  const changes = family(families, "bpfpilot_tunable_changes");
  assert.equal(changes.type, "counter");
  assert.equal(changes.samples[0].name, "bpfpilot_tunable_changes_total");
  assert.equal(valueOf(changes, { sysctl: "net.ipv4.tcp_rmem", netns: "global" }), "2");

  const scenarios = family(families, "bpfpilot_scenario");
  assert.equal(scenarios.type, "counter");
  assert.equal(
    valueOf(scenarios, { tuner: "tcp_buffer", scenario: "need to increase max buffer size" }),
    "2",
  );

  assert.equal(valueOf(family(families, "bpfpilot_events"), { tuner: "tcp_buffer" }), "120");
  assert.equal(valueOf(family(families, "bpfpilot_events_dropped"), { tuner: "tcp_buffer" }), "3");

  const hooks = family(families, "bpfpilot_hook_info");
  assert.equal(
    valueOf(hooks, { tuner: "tcp_buffer", hook: "tcp/tcp_probe", kind: "tracepoint" }),
    "1",
  );
  assert.equal(
    valueOf(hooks, { tuner: "tcp_buffer", hook: "tcp_sndbuf_expand", kind: "fentry" }),
    "0",
  );

  const rss = family(families, "bpfpilot_process_resident_memory_bytes");
  assert.equal(rss.unit, "bytes");
  assert.equal(rss.samples[0].raw, "52428800");
  const cpu = family(families, "bpfpilot_process_cpu_seconds");
  assert.equal(cpu.type, "counter");
  assert.equal(cpu.unit, "seconds");
  assert.equal(cpu.samples[0].name, "bpfpilot_process_cpu_seconds_total");
  assert.equal(cpu.samples[0].value, 1.25);

  const build = family(families, "bpfpilot_build");
  assert.equal(build.type, "info");
  assert.deepEqual(build.samples[0].labels, { version: VERSION });
});

Deno.test("renderMetrics: every family name carries the bpfpilot_ prefix and counters _total", () => {
  const families = parseOpenMetrics(renderMetrics(snapshot()));
  for (const f of families.values()) {
    assert.match(f.name, /^bpfpilot_[a-z0-9_]+$/);
    assert.ok(f.help && f.help.length > 0, `${f.name} has no HELP`);
    for (const s of f.samples) {
      if (f.type === "counter") assert.match(s.name, /_total$/);
    }
  }
});

Deno.test("renderMetrics: label values with quotes, backslashes and newlines round-trip", () => {
  const nasty = 'we"ird\\name\nnext';
  const text = renderMetrics(snapshot({
    tunables: [{ sysctl: "net.x", netns: nasty, values: [1], changes: 1 }],
    scenarios: [{ tuner: "t", scenario: nasty, count: 1 }],
    hooks: [{ tuner: "t", hook: nasty, kind: "k", attached: true }],
  }));
  // Raw newline inside a label would split the line: the text must contain only escaped ones.
  assert.ok(text.includes('netns="we\\"ird\\\\name\\nnext"'));
  const families = parseOpenMetrics(text);
  assert.equal(family(families, "bpfpilot_tunable_value").samples[0].labels.netns, nasty);
  assert.equal(family(families, "bpfpilot_scenario").samples[0].labels.scenario, nasty);
  assert.equal(family(families, "bpfpilot_hook_info").samples[0].labels.hook, nasty);
});

Deno.test("escapeLabelValue escapes exactly backslash, quote and line feed", () => {
  assert.equal(escapeLabelValue('a\\b"c\nd\te'), 'a\\\\b\\"c\\nd\te');
});

Deno.test("renderMetrics: string sysctls are skipped, huge integers are exact", () => {
  const text = renderMetrics(snapshot({
    tunables: [
      { sysctl: "net.ipv4.tcp_congestion_control", values: ["bbr"], changes: 1 },
      { sysctl: "kernel.shmmax", values: ["18446744073692774399"], changes: 0 },
      { sysctl: "kernel.big", values: [18446744073709551615n], changes: 0 },
    ],
  }));
  const value = family(parseOpenMetrics(text), "bpfpilot_tunable_value");
  assert.deepEqual(value.samples.map((s) => s.labels.sysctl), ["kernel.shmmax", "kernel.big"]);
  assert.equal(value.samples[0].raw, "18446744073692774399");
  assert.equal(value.samples[1].raw, "18446744073709551615");
});

Deno.test("renderMetrics: invalid counts and duplicate series cannot break the exposition", () => {
  const text = renderMetrics(snapshot({
    scenarios: [
      { tuner: "t", scenario: "s", count: 1 },
      { tuner: "t", scenario: "s", count: 5 },
      { tuner: "t", scenario: "neg", count: -1 },
      { tuner: "t", scenario: "nan", count: NaN },
    ],
    events: [{ tuner: "t", seen: Infinity, dropped: 0 }],
  }));
  const families = parseOpenMetrics(text);
  const scenarios = family(families, "bpfpilot_scenario");
  assert.deepEqual(scenarios.samples.map((s) => [s.labels.scenario, s.raw]), [["s", "1"]]);
  assert.equal(family(families, "bpfpilot_events").samples.length, 0);
});

Deno.test("renderMetrics: an empty daemon still renders every family", () => {
  const families = parseOpenMetrics(renderMetrics({
    tunables: [],
    scenarios: [],
    events: [],
    hooks: [],
    process: { residentBytes: 1, cpuSeconds: 0 },
  }));
  for (
    const name of [
      "bpfpilot_tunable_value",
      "bpfpilot_tunable_changes",
      "bpfpilot_scenario",
      "bpfpilot_events",
      "bpfpilot_events_dropped",
      "bpfpilot_hook_info",
    ]
  ) {
    assert.equal(family(families, name).samples.length, 0);
  }
});

Deno.test("the test parser rejects what OpenMetrics forbids (so the tests above can fail)", () => {
  const bad = [
    "# TYPE a gauge\na 1\n", // no # EOF
    "# TYPE a counter\na 1\n# EOF\n", // counter sample without _total
    '# TYPE a gauge\na{l="x\\t"} 1\n# EOF\n', // invalid escape
    "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n# EOF\n", // interleaved
    "# TYPE a_bytes gauge\n# UNIT a_bytes seconds\na_bytes 1\n# EOF\n", // unit not a suffix
    '# TYPE a gauge\na{l="1"} 1\na{l="1"} 2\n# EOF\n', // duplicate series
    "# TYPE a gauge\na one\n# EOF\n", // bad number
    "# TYPE a gauge\na 1\n# EOF\nb 1\n", // after EOF
  ];
  for (const text of bad) {
    assert.throws(() => parseOpenMetrics(text), /OpenMetrics/, JSON.stringify(text));
  }
});

Deno.test("parseListenAddress: loopback by default, non-loopback only when allowed", () => {
  assert.deepEqual(parseListenAddress("9101"), { hostname: "127.0.0.1", port: 9101 });
  assert.deepEqual(parseListenAddress("127.0.0.1:0"), { hostname: "127.0.0.1", port: 0 });
  assert.deepEqual(parseListenAddress("localhost:9101"), { hostname: "127.0.0.1", port: 9101 });
  assert.deepEqual(parseListenAddress("[::1]:9101"), { hostname: "::1", port: 9101 });
  assert.deepEqual(parseListenAddress("127.1.2.3:80"), { hostname: "127.1.2.3", port: 80 });
  for (const addr of ["0.0.0.0:9101", ":9101", "[::]:9101", "10.0.0.1:9101", "example.org:1"]) {
    assert.throws(() => parseListenAddress(addr), MetricsListenError, addr);
    assert.throws(() => parseListenAddress(addr), /non-loopback/, addr);
  }
  assert.deepEqual(parseListenAddress(":9101", { allowNonLoopback: true }), {
    hostname: "0.0.0.0",
    port: 9101,
  });
  for (const addr of ["", "abc", "1.2.3.4", "::1:9101", "127.0.0.1:70000", "127.0.0.1:-1"]) {
    assert.throws(() => parseListenAddress(addr), MetricsListenError, addr);
  }
});

Deno.test("parseCpuSeconds: sums utime and stime even with spaces and ')' in the name", () => {
  const stat = "4242 (evil) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 " +
    "100 1000000 200 18446744073709551615";
  assert.equal(parseCpuSeconds(stat), 3.25);
  assert.throws(() => parseCpuSeconds("garbage"), /stat format/);
});
