/** The exit summary's undo line and the event buckets, and README command 1 agreeing with --help. */
import assert from "node:assert/strict";
import { DaemonStats } from "../../src/daemon/stats.ts";
import { summaryLines, undoLines } from "../../src/daemon/summary.ts";
import { eventBuckets, eventsLine } from "../../src/daemon/event_accounting.ts";
import { RUN_HELP } from "../../src/cli/run.ts";

const RMEM = "net.ipv4.tcp_rmem";

function stats(): DaemonStats {
  const s = new DaemonStats();
  s.recordChange("tcp_buffer", RMEM, "global", [4096, 131072, 6291456], [4096, 131072, 7864320]);
  s.recordChange("tcp_buffer", RMEM, "global", [4096, 131072, 7864320], [4096, 131072, 9830400]);
  s.recordChange("tcp_buffer", RMEM, "ns:4026532999", [4096, 16384, 65536], [4096, 16384, 81920]);
  s.recordChange("tcp_buffer", RMEM, "ns:4026533000", [1, 2, 3], [1, 2, 4]);
  return s;
}

const names = (key: string) => key === "ns:4026532999" ? "blue" : undefined;

Deno.test("the undo line names bpfpilot rollback and the sysctl -w lines that restore", () => {
  const lines = undoLines(stats(), {
    advise: false,
    rollbackOnExit: false,
    stateDir: null,
    netnsName: names,
  });
  assert.match(lines[0], /^# Undo: .* run 'bpfpilot rollback'/);
  assert.deepEqual(lines.slice(1), [
    'sysctl -w net.ipv4.tcp_rmem="4096 131072 6291456"', // the value before the first change
    'ip netns exec blue sysctl -w net.ipv4.tcp_rmem="4096 16384 65536"',
    '# (in non-global ns (inode 4026533000), now gone or unnamed) sysctl -w net.ipv4.tcp_rmem="1 2 3"',
  ]);
  const own = undoLines(stats(), {
    advise: false,
    rollbackOnExit: false,
    stateDir: "/tmp/my state",
    netnsName: names,
  });
  assert.match(own[0], /'bpfpilot rollback --state-dir '\/tmp\/my state''/);
});

Deno.test("no undo line when nothing changed or in advise mode; -R says it restores now", () => {
  const base = { rollbackOnExit: false, stateDir: null, netnsName: names };
  assert.deepEqual(undoLines(new DaemonStats(), { ...base, advise: false }), []);
  assert.deepEqual(undoLines(stats(), { ...base, advise: true }), []);
  const r = undoLines(stats(), { ...base, advise: false, rollbackOnExit: true });
  assert.deepEqual(r.length, 1);
  assert.match(r[0], /-R given/);
});

Deno.test("event buckets: every hit in exactly one; a counting bug shows as negative quiet", () => {
  const b = eventBuckets({
    hits: 1002735,
    emitted: 234633,
    suppressed: 38065,
    dropped: 0,
    skipped: 22,
    muted: 5000,
  });
  assert.equal(b.quiet + b.filtered + b.folded + b.sent + b.lost + b.muted, b.hits);
  assert.equal(b.quiet, 1002735 - 22 - 38065 - 234633 - 5000);
  assert.match(
    eventsLine("tcp_buffer", b, 17),
    /hooks fired 1002735 times past their cheap tests = 725015 with no limit near \+ 22 filtered \+ 38065 folded .* \+ 234633 sent as events \+ 0 lost .* \+ 5000 muted .*; 17 events reached userspace/,
  );
  assert.equal(
    eventBuckets({ hits: 1, emitted: 2, suppressed: 0, dropped: 0, skipped: 0, muted: 0 }).quiet,
    -1,
  );
});

Deno.test("README command 1 and run --help say the same about undoing", () => {
  const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));
  const command1 = readme.slice(readme.indexOf("Run the daemon"), readme.indexOf("Run the whole"));
  for (const text of [command1, RUN_HELP]) {
    assert.match(text, /stay[s]? (changed )?after/, "changes outlive the daemon");
    assert.match(text, /bpfpilot rollback/);
    assert.match(text, /`?sysctl -w`? lines/);
    assert.match(text, /-R restores them on exit|add `-R` to restore them on exit/);
    assert.match(text, /undo line/);
  }
});

Deno.test("namespaces that are gone are folded: counts kept, their own lines and undo gone", () => {
  const s = stats();
  s.countScenario("tcp_buffer", "need increase", RMEM, "ns:4026532999");
  s.countScenario("tcp_buffer", "need increase", RMEM, "ns:4026533000");
  s.countScenario("tcp_buffer", "need increase", RMEM, "ns:4026533000");
  s.countScenario("tcp_buffer", "need increase", RMEM, "global");
  s.forgetNetns(new Set(["ns:4026533000", "ns:4026539999"]));
  s.forgetNetns(new Set(["ns:4026532999"]));
  assert.deepEqual([...s.changes.values()].map((c) => c.netns), ["global"]);
  assert.deepEqual([...s.scenarios.values()].map((c) => [c.netns, c.count]), [["global", 1]]);
  assert.equal(s.gone.namespaces, 2, "those with a record");
  assert.deepEqual([...s.gone.changes.values()], [
    { tuner: "tcp_buffer", sysctl: RMEM, changes: 2, namespaces: 2 },
  ]);
  assert.deepEqual([...s.gone.scenarios.values()].map((g) => g.count), [3]);
  const lines = summaryLines("tcp_buffer", s, () => "Need to increase.", false);
  assert.ok(
    lines.includes(
      "# Summary: scenario 'need increase' occurred 3 times for tunable 'net.ipv4.tcp_rmem' in " +
        "network namespaces that are gone. Need to increase.",
    ),
    lines.join("\n"),
  );
  assert.ok(lines.includes(
    "# sysctl 'net.ipv4.tcp_rmem' changed 2 times in 2 network namespaces that are gone " +
      "(nothing left to undo there)",
  ));
  assert.ok(!lines.some((l) => l.includes("4026533000")), "no line of a gone namespace");
  const undo = undoLines(s, {
    advise: false,
    rollbackOnExit: false,
    stateDir: null,
    netnsName: names,
  });
  assert.deepEqual(undo.slice(1), ['sysctl -w net.ipv4.tcp_rmem="4096 131072 6291456"']);
});
