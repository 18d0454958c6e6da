import assert from "node:assert/strict";
import { escapeLabel, renderOpenMetrics } from "../../src/audit/render_openmetrics.ts";
import { auditReport as report } from "../support/audit_report.ts";
import { findSamples, OpenMetricsParseError, parseOpenMetrics } from "../support/openmetrics.ts";

// ---- the test parser itself -----------------------------------------------------------------

Deno.test("parser: families, types, HELP/UNIT, labels, special values and timestamps", () => {
  const families = parseOpenMetrics([
    "# HELP requests Requests served.",
    "# TYPE requests counter",
    'requests_total{code="200",path="/a\\"b\\\\c\\nd"} 12 1700000000',
    "requests_created 1700000000.5",
    "# TYPE temp_celsius gauge",
    "# UNIT temp_celsius celsius",
    "temp_celsius -3.5e1",
    "# TYPE up gauge",
    "up{} +Inf",
    "untyped_thing NaN",
    "# EOF",
    "",
  ].join("\n"));
  assert.deepEqual(families.map((f) => [f.name, f.type]), [
    ["requests", "counter"],
    ["temp_celsius", "gauge"],
    ["up", "gauge"],
    ["untyped_thing", "unknown"],
  ]);
  const [req] = findSamples(families, "requests_total", { code: "200" });
  assert.equal(req.labels.path, '/a"b\\c\nd');
  assert.equal(req.value, 12);
  assert.equal(req.timestamp, 1700000000);
  assert.equal(families[0].help, "Requests served.");
  assert.equal(families[1].unit, "celsius");
  assert.equal(findSamples(families, "temp_celsius")[0].value, -35);
  assert.equal(findSamples(families, "up")[0].value, Infinity);
  assert.ok(Number.isNaN(findSamples(families, "untyped_thing")[0].value));
});

Deno.test("parser: rejects what breaks scrapers", () => {
  const bad: [string, RegExp][] = [
    ["a 1\n", /last line must be '# EOF'/],
    ["a 1\n# EOF", /end with a newline/],
    ["# EOF\na 1\n# EOF\n", /'# EOF' before the end/],
    ['# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="1"} 2\n# EOF\n', /interleaved/],
    ["# TYPE a gauge\na 1\na 2\n# EOF\n", /duplicate series/],
    ["# TYPE a gauge\na 1\n# HELP a late\n# EOF\n", /after its samples/],
    ["# TYPE a gauge\n# TYPE a counter\n# EOF\n", /second TYPE/],
    ["# TYPE a bogus\n# EOF\n", /unknown type/],
    ['a{x="\\t"} 1\n# EOF\n', /invalid escape/],
    ['a{x="1",x="2"} 1\n# EOF\n', /duplicate label/],
    ["a{x=1} 1\n# EOF\n", /not quoted/],
    ['a{x="1} 1\n# EOF\n', /unterminated/],
    ["a one\n# EOF\n", /invalid number/],
    ["# TYPE c counter\nc 1\n# EOF\n", /does not fit counter family c/],
    ["# UNIT a_bytes seconds\n# EOF\n", /must end with its unit/],
    ["\n# EOF\n", /empty line/],
    ["# random comment\n# EOF\n", /unknown comment/],
  ];
  for (const [text, message] of bad) {
    assert.throws(
      () => parseOpenMetrics(text),
      (e) => e instanceof OpenMetricsParseError && message.test(e.message),
      text,
    );
  }
});

// ---- the audit's textfile -------------------------------------------------------------------

Deno.test("textfile: parses cleanly; gauges only, prefixed, each with HELP; ends in # EOF", () => {
  const text = renderOpenMetrics(report());
  const families = parseOpenMetrics(text);
  assert.ok(text.endsWith("\n# EOF\n"));
  for (const f of families) {
    assert.equal(f.type, "gauge", f.name);
    assert.match(f.name, /^bpfpilot_audit_[a-z_]+$/);
    assert.ok(f.help && f.help.length > 10, f.name);
    assert.ok(!f.name.endsWith("_total"), "no counter-style names on gauges");
  }
  assert.equal(findSamples(families, "bpfpilot_audit_timestamp_seconds")[0].value, 1767323045);
  assert.equal(findSamples(families, "bpfpilot_audit_exit_code")[0].value, 1);
  assert.equal(
    findSamples(families, "bpfpilot_audit_findings", { severity: "warning" })[0].value,
    1,
  );
  assert.equal(
    findSamples(families, "bpfpilot_audit_checks", { status: "needs-root" })[0].value,
    0,
  );
  const rec = findSamples(families, "bpfpilot_audit_finding_recommended_value", { field: "2" });
  assert.equal(rec[0].value, 12582912);
});

Deno.test("textfile: label values with quotes, backslashes and newlines round-trip", () => {
  const families = parseOpenMetrics(renderOpenMetrics(report()));
  const [info] = findSamples(families, "bpfpilot_audit_run_info");
  assert.equal(info.labels.host, 'web"01\\prod\nx');
  assert.equal(findSamples(families, "bpfpilot_audit_finding")[0].labels.netns, 'ns "a"');
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

Deno.test("textfile: no findings still gives every family (series do not vanish on a clean run)", () => {
  const clean = report({
    findings: [],
    checks: [],
    exitCode: 0,
    summary: {
      findings: { critical: 0, warning: 0, info: 0 },
      checks: { pass: 0, finding: 0, skip: 0, "needs-root": 0 },
    },
  });
  const families = parseOpenMetrics(renderOpenMetrics(clean));
  assert.equal(findSamples(families, "bpfpilot_audit_findings").length, 3);
  assert.equal(findSamples(families, "bpfpilot_audit_checks").length, 4);
  assert.equal(findSamples(families, "bpfpilot_audit_finding").length, 0);
});
