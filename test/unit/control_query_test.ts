import assert from "node:assert/strict";
import { formatTable, QUERY_EXIT, renderAnswer, runQuery } from "../../src/cli/query.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) };
}

Deno.test("formatTable aligns columns and leaves the last one unpadded", () => {
  assert.equal(
    formatTable(["TUNER", "STATE", "REASON"], [["tcp_buffer", "active", ""], [
      "x",
      "manual",
      "admin",
    ]]),
    [
      "TUNER       STATE   REASON",
      "tcp_buffer  active",
      "x           manual  admin",
    ].join("\n"),
  );
});

Deno.test("renderAnswer: tuners and tunables as tables; daemon strings cannot inject escapes", () => {
  const tuners = renderAnswer("tuners", [
    { name: "tcp_buffer", state: "manual", reason: "admin set net.ipv4.tcp_rmem\u001b[2J" },
  ]);
  assert.match(tuners, /^TUNER\s+STATE\s+REASON\ntcp_buffer\s+manual\s+admin set/);
  assert.ok(!tuners.includes("\u001b"));
  assert.ok(tuners.includes("\\x1b[2J"));

  const tunables = renderAnswer("tunables", [
    {
      tuner: "tcp_buffer",
      name: "net.ipv4.tcp_rmem",
      kind: "sysctl",
      type: "integer",
      values: [4096, 131072, 6291456],
      managed: true,
      overridden: false,
    },
    {
      tuner: "tcp_buffer",
      name: "net.ipv4.tcp_wmem",
      kind: "sysctl",
      type: "integer",
      values: [4096, 16384, 4194304],
      managed: true,
      overridden: true,
      netns: "blue",
    },
  ]);
  const lines = tunables.split("\n");
  assert.match(lines[0], /^TUNER\s+TUNABLE\s+NETNS\s+CONTROL\s+VALUES$/);
  assert.match(lines[1], /net\.ipv4\.tcp_rmem\s+global\s+managed\s+4096 131072 6291456$/);
  assert.match(lines[2], /blue\s+overridden \(admin\)\s+4096 16384 4194304$/);
});

Deno.test("renderAnswer: status omits the NETNS column when all are global", () => {
  const text = renderAnswer("status", [{ tuner: "t", name: "net.core.rmem_max", values: [1] }]);
  assert.equal(text, "TUNER  SYSCTL             VALUES\nt      net.core.rmem_max  1");
});

Deno.test("renderAnswer: a summary's namespaces that are gone, as totals", () => {
  const text = renderAnswer("summary", {
    since: "s",
    changes: [],
    scenarios: [],
    gone: {
      namespaces: 150,
      changes: [{
        tuner: "tcp_buffer",
        sysctl: "net.ipv4.tcp_wmem",
        changes: 301,
        namespaces: 149,
      }],
      scenarios: [{
        tuner: "tcp_buffer",
        tunable: "net.ipv4.tcp_wmem",
        scenario: "need to increase max buffer size",
        description: "Need to increase buffer size.",
        count: 301,
      }],
    },
  });
  assert.equal(
    text,
    [
      "# Summary of changes made since s:",
      "# in 150 network namespaces that are gone since:",
      "# tcp_buffer: sysctl 'net.ipv4.tcp_wmem' changed 301 times in 149 of them",
      "# tcp_buffer: scenario 'need to increase max buffer size' occurred 301 times for tunable " +
      "'net.ipv4.tcp_wmem'. Need to increase buffer size.",
    ].join("\n"),
  );
});

Deno.test("renderAnswer: summary and rollback read as shell comments plus commands", () => {
  const summary = renderAnswer("summary", {
    since: "2025-01-01T00:00:00Z",
    changes: [{
      tuner: "tcp_buffer",
      sysctl: "net.ipv4.tcp_rmem",
      initial: [4096, 131072, 6291456],
      current: [4096, 131072, 7864320],
      changes: 1,
    }],
    scenarios: [{
      tuner: "tcp_buffer",
      tunable: "net.ipv4.tcp_rmem",
      scenario: "need to increase max buffer size",
      description: "Need to increase buffer size to maximize throughput",
      count: 3,
      netns: "blue",
    }],
  });
  assert.equal(
    summary,
    [
      "# Summary of changes made since 2025-01-01T00:00:00Z:",
      "# tcp_buffer: sysctl 'net.ipv4.tcp_rmem' changed from (4096 131072 6291456) -> " +
      "(4096 131072 7864320) in 1 change",
      "# tcp_buffer: scenario 'need to increase max buffer size' occurred 3 times for tunable " +
      "'net.ipv4.tcp_rmem' in netns blue. Need to increase buffer size to maximize throughput",
    ].join("\n"),
  );
  assert.match(
    renderAnswer("summary", { since: "s", changes: [], scenarios: [] }),
    /no changes made/,
  );

  const rollback = renderAnswer("rollback", [{
    tuner: "tcp_buffer",
    sysctl: "net.ipv4.tcp_rmem",
    original: [4096, 131072, 6291456],
    current: [4096, 131072, 7864320],
    command: 'sysctl -w net.ipv4.tcp_rmem="4096 131072 6291456"',
  }]);
  const lines = rollback.split("\n");
  assert.ok(lines.every((l) => l.startsWith("#") || l.startsWith("sysctl -w ")), rollback);
  assert.equal(lines.at(-1), 'sysctl -w net.ipv4.tcp_rmem="4096 131072 6291456"');
  assert.match(renderAnswer("rollback", []), /^# nothing to roll back/);
});

Deno.test("renderAnswer: metrics verbatim, bpftune JSON verbs as JSON", () => {
  assert.equal(renderAnswer("metrics", "a 1\n# EOF\n"), "a 1\n# EOF");
  assert.deepEqual(JSON.parse(renderAnswer("jstatus", { t: { s: [1, 2] } })), { t: { s: [1, 2] } });
});

Deno.test("runQuery: usage errors are caught before touching the socket", async () => {
  const socket = "/nonexistent-dir-for-bpfpilot-test/c.sock";
  for (
    const [verb, arg, pattern] of [
      ["bogus", undefined, /unknown query 'bogus'; supported queries are: help, /],
      ["enable", undefined, /'enable' needs a tuner or sysctl name/],
      ["status", "extra", /'status' takes no argument/],
    ] as const
  ) {
    const io = capture();
    assert.equal(await runQuery(verb, arg, { socket, ...io }), QUERY_EXIT.usage);
    assert.equal(io.out.length, 0);
    assert.match(io.err.join("\n"), pattern);
    assert.doesNotMatch(io.err.join("\n"), /not running/);
  }
});

Deno.test("runQuery --json: exactly one JSON document on stdout, also for errors", async () => {
  const io = capture();
  const status = await runQuery("tuners", undefined, {
    json: true,
    socket: "/nonexistent-dir-for-bpfpilot-test/c.sock",
    ...io,
  });
  assert.equal(status, QUERY_EXIT.notRunning);
  assert.equal(io.out.length, 1);
  assert.equal(JSON.parse(io.out[0]).error.code, "not-running");
  assert.match(io.err[0], /^bpfpilot: bpfpilot daemon is not running \(no control socket at /);
});
