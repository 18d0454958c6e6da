/** Tuner-specific metrics and tables: rendered next to the generic ones, shaped for people. */
import assert from "node:assert/strict";
import { renderMetrics } from "../../src/daemon/metrics.ts";
import { renderAnswer } from "../../src/cli/query.ts";

const base = {
  tunables: [],
  scenarios: [],
  events: [],
  hooks: [],
  process: { residentBytes: 1, cpuSeconds: 1 },
};

Deno.test("tuner metrics become bpfpilot_<name> families labelled with the tuner", () => {
  const text = renderMetrics({
    ...base,
    tunerMetrics: [
      {
        tuner: "tcp_conn",
        name: "tcp_conn_choices",
        type: "counter",
        help: "Connections given an algorithm.",
        labels: { algorithm: "bbr" },
        value: 12,
      },
      {
        tuner: "tcp_conn",
        name: "tcp_conn_choices",
        type: "counter",
        help: "Connections given an algorithm.",
        labels: { algorithm: "cubic" },
        value: 3,
      },
      {
        tuner: "tcp_conn",
        name: "tcp_conn_paths",
        type: "gauge",
        help: "Paths.",
        labels: {},
        value: 2,
      },
      { tuner: "x", name: "Bad-Name", type: "gauge", help: "", labels: {}, value: 1 },
    ],
  });
  assert.match(text, /# TYPE bpfpilot_tcp_conn_choices counter\n/);
  assert.match(text, /bpfpilot_tcp_conn_choices_total\{tuner="tcp_conn",algorithm="bbr"\} 12\n/);
  assert.match(text, /bpfpilot_tcp_conn_choices_total\{tuner="tcp_conn",algorithm="cubic"\} 3\n/);
  assert.match(text, /bpfpilot_tcp_conn_paths\{tuner="tcp_conn"\} 2\n/);
  assert.doesNotMatch(text, /Bad-Name/);
  assert.ok(text.endsWith("# EOF\n"));
});

Deno.test("query paths: one aligned table, netns column only when some path has one", () => {
  const rows = [
    { address: "10.77.1.2", algorithm: "bbr", metric: 0, count: 30, forced: 21 },
    { address: "10.77.2.2", algorithm: "cubic", metric: 1200, count: 30, forced: 0 },
  ];
  const columns = ["netns", "address", "algorithm", "metric", "count", "forced"];
  const text = renderAnswer("paths", [{ tuner: "tcp_conn", columns, rows }]);
  const lines = text.split("\n");
  assert.match(lines[0], /^ADDRESS +ALGORITHM +METRIC +COUNT +FORCED$/);
  assert.match(lines[1], /^10\.77\.1\.2 +bbr +0 +30 +21$/);
  assert.equal(lines.length, 3);
  const withNs = renderAnswer("paths", [{
    tuner: "tcp_conn",
    columns,
    rows: [{ ...rows[0], netns: "blue" }, rows[1]],
  }]);
  assert.match(withNs.split("\n")[0], /^NETNS +ADDRESS/);
  assert.match(withNs.split("\n")[2], /^global +10\.77\.2\.2/);
  assert.match(renderAnswer("paths", []), /^no paths/);
});
