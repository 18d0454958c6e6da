/**
 * The proposal pipeline with a fake sysctl backend and a real journal in a temp dir: overrides,
 * cool-down, coalescing, advise mode, journal-before-write, failures and the at-ceiling notice.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { ProposalApplier } from "../../src/daemon/applier.ts";
import { Journal } from "../../src/daemon/journal.ts";
import { RateGate } from "../../src/daemon/rate_gate.ts";
import { DaemonStats } from "../../src/daemon/stats.ts";
import type { SysctlIO } from "../../src/daemon/sysctl_io.ts";
import { NetnsGoneError } from "../../src/kernel/netns.ts";
import type { Proposal } from "../../src/tuning/proposal.ts";
import { ConfigPolicy } from "../../src/daemon/config_policy.ts";
import { recordingLog } from "../support/fake_context.ts";
import { parseConfig } from "../../src/config/parse.ts";
import { TUNERS } from "../../src/tuners/registry.ts";
import type { Outcome } from "../../src/daemon/event_mutes.ts";

/** The policy of a configuration file's text (as the daemon builds it). */
function policyOf(text: string): ConfigPolicy {
  const c = parseConfig(text, TUNERS);
  assert.deepEqual(c.problems, []);
  return new ConfigPolicy({ path: "/etc/bpfpilot/bpfpilot.conf", ...c });
}

class FakeIO implements SysctlIO {
  values = new Map<string, number[]>();
  writes: string[] = [];
  failNext = false;
  /** The next write finds its namespace gone (refused before writing). */
  goneNext = false;
  /**
   * Whether (netns, sysctl)'s record is in the files (as a reader after a kill -9 would see
   * them). By default a second Journal reads the files; within a batch that would wait for the
   * lock the batch holds: the log's text is read instead.
   */
  onDisk = (netns: string, sysctl: string) => !!Journal.open(this.journalDir).entry(netns, sysctl);
  constructor(private journalDir: string) {}
  read(sysctl: string, netns: string) {
    return this.values.get(`${netns} ${sysctl}`) ?? null;
  }
  write(sysctl: string, netns: string, v: readonly number[]) {
    // The original must already be in the journal's log when the write happens.
    assert.ok(this.onDisk(netns, sysctl), "original recorded before the write");
    if (this.goneNext) {
      this.goneNext = false;
      throw new NetnsGoneError(netns);
    }
    if (this.failNext) {
      this.failNext = false;
      throw new Error("the kernel rejected value");
    }
    this.values.set(`${netns} ${sysctl}`, [...v]);
    this.writes.push(`${netns} ${sysctl}=${v.join(" ")}`);
  }
}

function setup(opts: { advise?: boolean; onlyNetns?: string; policy?: ConfigPolicy } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "bpfp-applier-"));
  const journal = Journal.open(dir);
  const io = new FakeIO(dir);
  /** For tests in a batch (see FakeIO.onDisk): the log holds a record of (netns, sysctl). */
  const inLog = (netns: string, sysctl: string) => {
    const log = readFileSync(join(dir, "state.log"), "utf8");
    return log.includes(`"netns":"${netns}","sysctl":"${sysctl}"`);
  };
  const { log, lines } = recordingLog();
  let now = 0;
  const stats = new DaemonStats();
  const outcomes: Outcome[] = [];
  const applier = new ProposalApplier({
    journal,
    gate: new RateGate({ cooldownMs: 5000 }),
    io,
    log,
    stats,
    advise: opts.advise ?? false,
    now: () => now,
    describe: () => "Need to increase buffer size(s) to maximize throughput",
    onlyNetns: opts.onlyNetns ?? null,
    scopeOf: (s) => s === "net.ipv4.tcp_mem" ? "global" : "netns",
    policy: opts.policy,
    outcome: (o) => outcomes.push(o),
  });
  return {
    applier,
    outcomes,
    io,
    lines,
    stats,
    journal,
    inLog,
    /** One wake-up as the daemon runs it: a journal batch whose writes wait for its records. */
    drain: (fn: () => void) => journal.batch(() => applier.deferWrites(fn)),
    tick: (ms: number) => now += ms,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** setup() for one wake-up's writes: records checked on disk, tcp_rmem max 65536 in `spaces`. */
function setupDeferred(spaces: string[]) {
  const t = setup();
  t.io.onDisk = t.inLog;
  for (const ns of spaces) t.io.values.set(`${ns} net.ipv4.tcp_rmem`, [4096, 16384, 65536]);
  return t;
}

function rmem(from: number, to: number, netns = "global"): Proposal {
  return {
    tuner: "tcp_buffer",
    scenario: "need to increase TCP buffer size(s)",
    sysctl: "net.ipv4.tcp_rmem",
    netns,
    from: [4096, 16384, from],
    to: [4096, 16384, to],
    reason: `Due to need to increase max buffer size to maximize throughput change ` +
      `net.ipv4.tcp_rmem(min default max) from (4096 16384 ${from}) -> (4096 16384 ${to})`,
  };
}

Deno.test("a change is journalled, written, logged with both lines, and counted", () => {
  const t = setup();
  try {
    t.io.values.set("global net.ipv4.tcp_rmem", [4096, 16384, 65536]);
    assert.equal(t.applier.propose(rmem(65536, 81920)), true);
    assert.deepEqual(t.io.writes, ["global net.ipv4.tcp_rmem=4096 16384 81920"]);
    assert.deepEqual(t.lines, [
      "I Scenario 'need to increase TCP buffer size(s)' occurred for tunable 'net.ipv4.tcp_rmem' " +
      "in global ns. Need to increase buffer size(s) to maximize throughput",
      "I Due to need to increase max buffer size to maximize throughput change " +
      "net.ipv4.tcp_rmem(min default max) from (4096 16384 65536) -> (4096 16384 81920)",
    ]);
    const e = t.journal.entry("global", "net.ipv4.tcp_rmem")!;
    assert.deepEqual(e.original, [4096, 16384, 65536]);
    assert.deepEqual(e.lastWritten, [4096, 16384, 81920]);
    assert.equal([...t.stats.scenarios.values()][0].count, 1);
  } finally {
    t.cleanup();
  }
});

Deno.test("the same change again is coalesced; another within the cool-down waits", () => {
  const t = setup();
  try {
    assert.equal(t.applier.propose(rmem(65536, 81920)), true);
    assert.equal(t.applier.propose(rmem(65536, 81920)), false, "duplicate");
    assert.deepEqual(t.outcomes[1], { kind: "other" }, "a change's repeat is not advice");
    assert.equal(t.applier.propose(rmem(81920, 102400)), false, "cooling down");
    t.tick(5001);
    assert.equal(t.applier.propose(rmem(81920, 102400)), true);
    assert.equal(t.io.writes.length, 2);
    assert.equal(t.lines.filter((l) => l.includes("Due to")).length, 2, "each logged once");
  } finally {
    t.cleanup();
  }
});

Deno.test("coolingDownUntil: only the cool-down's refusal of the last proposal says when it ends", () => {
  const t = setup();
  try {
    const RMEM = "net.ipv4.tcp_rmem";
    assert.equal(t.applier.propose(rmem(65536, 81920)), true);
    assert.equal(t.applier.coolingDownUntil(RMEM, "global"), null, "written");
    assert.equal(t.applier.propose(rmem(81920, 65536)), false, "a reversal cools down");
    assert.equal(t.applier.coolingDownUntil(RMEM, "global"), 5000);
    assert.equal(t.applier.coolingDownUntil(RMEM, "ns:123"), null, "another key");
    assert.equal(t.applier.coolingDownUntil("net.ipv4.tcp_wmem", "global"), null);
    t.journal.markOverride({
      netns: "global",
      sysctl: RMEM,
      tuner: "tcp_buffer",
      pid: 1,
      comm: "x",
    });
    assert.equal(t.applier.propose(rmem(81920, 65536)), false);
    assert.equal(
      t.applier.coolingDownUntil(RMEM, "global"),
      null,
      "overridden: waiting won't help",
    );
  } finally {
    t.cleanup();
  }
});

Deno.test("advise mode writes nothing, logs the proposal once with the sysctl -w line", () => {
  const t = setup({ advise: true });
  try {
    assert.equal(t.applier.propose(rmem(65536, 81920)), true);
    assert.equal(t.applier.propose(rmem(65536, 81920)), false);
    assert.equal(t.applier.propose(rmem(65536, 98304)), false, "a revised target is no news");
    const advised = { kind: "advised", netns: "global", sysctl: "net.ipv4.tcp_rmem" };
    assert.deepEqual(t.outcomes, [advised, advised, advised], "each mutes its event's key");
    assert.deepEqual(t.io.writes, []);
    assert.equal(t.journal.changedEntries().length, 0, "nothing journalled");
    assert.equal(t.lines.length, 3);
    assert.match(
      t.lines[2],
      /advise mode: not applied; to apply: sysctl -w net\.ipv4\.tcp_rmem="4096 16384 81920"/,
    );
  } finally {
    t.cleanup();
  }
});

Deno.test("an admin override stops the change (noted once); other namespaces unaffected", () => {
  const t = setup();
  try {
    t.journal.markOverride({
      netns: "global",
      sysctl: "net.ipv4.tcp_rmem",
      tuner: "tcp_buffer",
      pid: 1,
      comm: "sysctl",
    });
    assert.equal(t.applier.propose(rmem(65536, 81920)), false);
    assert.equal(t.applier.propose(rmem(65536, 81920)), false);
    assert.equal(t.lines.filter((l) => l.includes("administrator took it over")).length, 1);
    assert.equal(t.applier.propose(rmem(65536, 81920, "ns:123")), true);
  } finally {
    t.cleanup();
  }
});

Deno.test("--netns: other namespaces' per-namespace sysctls are left alone, host-wide ones not", () => {
  const t = setup({ onlyNetns: "ns:7" });
  try {
    assert.equal(t.applier.propose(rmem(65536, 81920, "global")), false);
    assert.equal(t.applier.propose(rmem(65536, 81920, "ns:7")), true);
    const mem: Proposal = {
      ...rmem(1, 2),
      sysctl: "net.ipv4.tcp_mem",
      from: [1, 2, 3],
      to: [1, 2, 4],
    };
    assert.equal(t.applier.propose(mem), true);
  } finally {
    t.cleanup();
  }
});

Deno.test("a failed write is logged as an error, not counted, and cools down", () => {
  const t = setup();
  try {
    t.io.failNext = true;
    assert.equal(t.applier.propose(rmem(65536, 81920)), false);
    assert.match(
      t.lines[0],
      /^E could not change net\.ipv4\.tcp_rmem in global ns: the kernel rejected/,
    );
    assert.equal(t.stats.scenarios.size, 0);
    assert.equal(t.applier.propose(rmem(65536, 81920)), false, "cooling down after a failure");
  } finally {
    t.cleanup();
  }
});

Deno.test("a write refused because the namespace is gone: no change said, none journalled", () => {
  const t = setup();
  // Every field of every record too: a log reader (or the namespace-scale test) that looks for
  // bpftune's "Due to ... change" sentence must not find one for a change that was not made.
  const records: string[] = [];
  const keep = (m: string, f?: object) => void records.push(`${m} ${JSON.stringify(f ?? {})}`);
  const applier = new ProposalApplier({
    journal: t.journal,
    gate: new RateGate({ cooldownMs: 5000 }),
    io: t.io,
    log: { debugEnabled: true, error: keep, warn: keep, notice: keep, info: keep, debug: keep },
    stats: t.stats,
    advise: false,
    now: () => now,
    describe: () => "",
  });
  let now = 0;
  try {
    t.io.goneNext = true;
    assert.equal(applier.propose(rmem(65536, 81920, "ns:4026532176")), false);
    assert.equal(records.length, 1);
    assert.match(records[0], /^did not change net\.ipv4\.tcp_rmem in non-global ns/);
    assert.doesNotMatch(records[0], /Due to .*change/);
    assert.equal(t.journal.changedEntries().length, 0, "no record of a write never made");
    assert.equal(t.stats.scenarios.size, 0);
    // A namespace written before keeps its entry, without the refused value pending.
    t.io.values.set("ns:7 net.ipv4.tcp_rmem", [4096, 16384, 65536]);
    assert.equal(applier.propose(rmem(65536, 81920, "ns:7")), true);
    now += 6000;
    t.io.goneNext = true;
    assert.equal(applier.propose(rmem(81920, 98304, "ns:7")), false);
    const e = t.journal.entry("ns:7", "net.ipv4.tcp_rmem")!;
    assert.deepEqual([e.lastWritten, e.pending], [[4096, 16384, 81920], null]);
  } finally {
    t.cleanup();
  }
});

Deno.test("a write goes only into the namespace its record names (the registry's cookie changed since)", () => {
  const dir = mkdtempSync(join(tmpdir(), "bpfp-applier-"));
  const RMEM = "net.ipv4.tcp_rmem";
  /** The registry's cookies: what the record takes, and what each write checks inside. */
  const held: Record<string, bigint> = { "ns:5": 50n, "ns:6": 60n };
  const journal = Journal.open(dir, { netnsCookie: (ns) => held[ns] ?? null });
  const io = new FakeIO(dir);
  io.onDisk = () => true;
  const { log, lines } = recordingLog();
  let now = 0;
  const applier = new ProposalApplier({
    journal,
    gate: new RateGate({ cooldownMs: 5000 }),
    io,
    log,
    stats: new DaemonStats(),
    advise: false,
    now: () => now,
    describe: () => "x",
    heldCookie: (ns) => held[ns],
  });
  try {
    assert.equal(applier.propose(rmem(65536, 81920, "ns:5")), true);
    assert.equal(journal.entry("ns:5", RMEM)?.netnsCookie, "50");
    // A new namespace (51) has ns:5's inode now, and the registry knows it: the entry is the dead
    // one's, and a write under it would land where its record does not name (dropped by rollback)
    held["ns:5"] = 51n;
    now += 6000;
    assert.equal(applier.propose(rmem(81920, 98304, "ns:5")), false);
    assert.deepEqual(io.writes, [`ns:5 ${RMEM}=4096 16384 81920`], "nothing written into 51");
    assert.deepEqual(journal.entry("ns:5", RMEM)?.lastWritten, [4096, 16384, 81920]);
    assert.equal(journal.entry("ns:5", RMEM)?.pending, null);
    // In one wake-up: the record takes 60, then a visit earlier in the batch finds another
    // namespace (61) at ns:6's inode before the write
    journal.batch(() =>
      applier.deferWrites(() => {
        assert.equal(applier.propose(rmem(65536, 81920, "ns:6")), true, "admitted");
        held["ns:6"] = 61n;
      })
    );
    assert.equal(io.writes.length, 1, "nothing written into 61");
    assert.equal(journal.entry("ns:6", RMEM), undefined, "no record of a change not made");
    assert.equal(lines.filter((l) => /did not change net\.ipv4\.tcp_rmem/.test(l)).length, 2);
  } finally {
    journal.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("at a ceiling: one notice per situation", () => {
  const t = setup();
  try {
    for (let i = 0; i < 3; i++) {
      t.applier.atCeiling("tcp_buffer", "net.ipv4.tcp_rmem", "global", [4096, 16384, 100], 100);
    }
    assert.equal(t.lines.length, 1);
    assert.match(t.lines[0], /^N 'net\.ipv4\.tcp_rmem' in global ns is at its ceiling/);
    t.applier.atCeiling("tcp_buffer", "net.ipv4.tcp_rmem", "global", [4096, 16384, 90], 100);
    assert.equal(t.lines.length, 2, "a new situation is reported again");
  } finally {
    t.cleanup();
  }
});

Deno.test("bpfpilot.conf ceiling: growth is capped there, logged, and stops once reached", () => {
  const t = setup({ policy: policyOf('[sysctl."net.ipv4.tcp_rmem"]\nceiling = 100000\n') });
  try {
    t.io.values.set("global net.ipv4.tcp_rmem", [4096, 16384, 65536]);
    assert.equal(t.applier.propose(rmem(65536, 131072)), true);
    assert.deepEqual(t.io.writes, ["global net.ipv4.tcp_rmem=4096 16384 100000"]);
    assert.ok(
      t.lines.some((l) =>
        l.includes("capped by bpfpilot.conf ceiling (100000 100000 100000, line 1)") &&
        l.includes("(4096 16384 100000) instead")
      ),
      t.lines.join("\n"),
    );
    t.tick(6000);
    assert.equal(t.applier.propose(rmem(100000, 125000)), false, "at the ceiling");
    assert.equal(t.io.writes.length, 1);
    assert.ok(t.lines.some((l) => /not tuning .* capped by bpfpilot.conf ceiling/.test(l)));
    // A value already above the ceiling is not lowered by it; shrinking is not capped.
    assert.deepEqual(t.journal.entry("global", "net.ipv4.tcp_rmem")!.lastWritten, [
      4096,
      16384,
      100000,
    ]);
  } finally {
    t.cleanup();
  }
});

Deno.test("bpfpilot.conf per-field ceiling: each field of a triple has its own", () => {
  const policy = policyOf('[sysctl."net.ipv4.tcp_rmem"]\nceiling = [4096, 20000, 1000000]\n');
  const j = policy.judge({ ...rmem(65536, 131072), to: [8192, 32768, 131072] });
  assert.deepEqual(j.to, [4096, 20000, 131072], "min held at its ceiling, default capped");
  assert.equal(policy.judge(rmem(2000000, 3000000)).refuse !== null, true, "above: never lowered");
});

Deno.test("bpfpilot.conf advise-only: logged as advise mode, never written", () => {
  const t = setup({ policy: policyOf('[tuner.tcp_buffer]\npolicy = "advise-only"\n') });
  try {
    t.io.values.set("global net.ipv4.tcp_rmem", [4096, 16384, 65536]);
    assert.equal(t.applier.propose(rmem(65536, 81920)), true, "would have");
    assert.deepEqual(t.io.writes, []);
    assert.ok(
      t.lines.some((l) =>
        l.startsWith("I advise-only by bpfpilot.conf:1: not applied; to apply: sysctl -w")
      ),
      t.lines.join("\n"),
    );
    assert.equal(t.journal.entry("global", "net.ipv4.tcp_rmem"), undefined, "nothing journalled");
  } finally {
    t.cleanup();
  }
});

Deno.test("bpfpilot.conf disabled: the sysctl is never touched, said once; the stricter rule wins", () => {
  const t = setup({
    policy: policyOf(
      '[tuner.tcp_buffer]\npolicy = "advise-only"\n[sysctl."net.ipv4.tcp_rmem"]\npolicy = "disabled"\n',
    ),
  });
  try {
    assert.equal(t.applier.propose(rmem(65536, 81920)), false);
    t.tick(6000);
    assert.equal(t.applier.propose(rmem(65536, 98304)), false);
    assert.deepEqual(t.io.writes, []);
    const said = t.lines.filter((l) => l.includes("disabled by bpfpilot.conf:3"));
    assert.equal(said.length, 1, t.lines.join("\n"));
  } finally {
    t.cleanup();
  }
});

Deno.test("each proposal reports what became of it, for the event mutes", () => {
  const conf = `[sysctl."net.ipv4.tcp_rmem"]\nceiling = [4096, 16384, 81920]\n`;
  const t = setup({ policy: policyOf(conf), onlyNetns: "4026532000" });
  try {
    const RMEM = "net.ipv4.tcp_rmem", ns = "4026532000";
    t.applier.propose(rmem(65536, 70000, ns));
    assert.deepEqual(t.outcomes.splice(0), [{ kind: "changed", netns: ns }]);
    t.applier.propose(rmem(70000, 60000, ns)); // a reversal within the cool-down
    assert.deepEqual(t.outcomes.splice(0), [
      { kind: "cooling-down", netns: ns, sysctl: RMEM, untilMs: 5000 },
    ]);
    t.applier.propose(rmem(70000, 70000, ns));
    assert.deepEqual(t.outcomes.splice(0), [{ kind: "other" }], "nothing to write");
    t.tick(5001);
    t.applier.propose(rmem(81920, 102400, ns));
    assert.equal(t.outcomes.splice(0)[0].kind, "refused", "at the configuration's ceiling");
    t.applier.propose(rmem(65536, 70000, "4026532999"));
    assert.deepEqual(t.outcomes.splice(0), [
      { kind: "refused", netns: "4026532999", sysctl: RMEM },
    ], "--netns names another namespace");
    t.journal.markOverride({ netns: ns, sysctl: RMEM, tuner: "tcp_buffer", pid: 1, comm: "x" });
    t.applier.propose(rmem(70000, 81920, ns));
    assert.deepEqual(t.outcomes.splice(0), [{ kind: "overridden", netns: ns, sysctl: RMEM }]);
    t.applier.atCeiling("tcp_buffer", RMEM, ns, [4096, 16384, 81920], 81920);
    assert.deepEqual(t.outcomes.splice(0), [{ kind: "at-ceiling", netns: ns, sysctl: RMEM }]);
  } finally {
    t.cleanup();
  }
});

/** Counts fdatasync calls of every file while `fn` runs (`fn` sees the count so far). */
function countingSyncs<T>(fn: (syncs: () => number) => T): { result: T; syncs: number } {
  const proto = Deno.FsFile.prototype;
  const real = proto.syncDataSync;
  let syncs = 0;
  proto.syncDataSync = function (this: Deno.FsFile) {
    syncs++;
    return real.call(this);
  };
  try {
    return { result: fn(() => syncs), syncs };
  } finally {
    proto.syncDataSync = real;
  }
}

Deno.test("deferWrites: a batch's changes are written at its end, after one append of all their records and no fdatasync", () => {
  const t = setup();
  try {
    const spaces = ["ns:11", "ns:12", "ns:13"];
    for (const ns of spaces) t.io.values.set(`${ns} net.ipv4.tcp_rmem`, [4096, 16384, 65536]);
    const size = () => Deno.statSync(join(t.journal.dir, "state.log")).size;
    let appended = -1;
    const { syncs } = countingSyncs(() =>
      t.drain(() => {
        // Each write finds its record in the log already, all of them appended at once.
        t.io.onDisk = (netns, sysctl) => {
          if (appended < 0) appended = size();
          assert.equal(size(), appended, "one append before the first write, none between");
          return t.inLog(netns, sysctl);
        };
        for (const ns of spaces) assert.equal(t.applier.propose(rmem(65536, 81920, ns)), true);
        assert.deepEqual(t.io.writes, [], "nothing written before the records are appended");
        assert.deepEqual(
          t.outcomes.map((o) => o.kind),
          ["changed", "changed", "changed"],
          "each event's outcome is known when it is handled",
        );
      })
    );
    // FakeIO.write checks each record is on disk before its write.
    assert.deepEqual(t.io.writes, spaces.map((ns) => `${ns} net.ipv4.tcp_rmem=4096 16384 81920`));
    assert.equal(syncs, 0, "no fdatasync on the change path (the tick syncs later)");
    assert.equal(t.journal.logSyncs, 0);
    assert.ok(t.journal.hasUnsynced(), "the records wait for the deferred sync");
    for (const ns of spaces) {
      assert.deepEqual(t.journal.entry(ns, "net.ipv4.tcp_rmem")!.lastWritten, [4096, 16384, 81920]);
    }
    assert.equal(t.lines.filter((l) => l.startsWith("I Due to")).length, 3);
  } finally {
    t.cleanup();
  }
});

Deno.test("deferWrites: a read of a sysctl with a queued write writes the queue first", () => {
  const t = setupDeferred(["ns:11", "ns:12"]);
  try {
    t.drain(() => {
      t.applier.propose(rmem(65536, 81920, "ns:11"));
      t.applier.flushFor("ns:12", ["net.ipv4.tcp_rmem"]);
      assert.deepEqual(t.io.writes, [], "another namespace's read does not");
      t.applier.flushFor("ns:11", ["net.ipv4.tcp_wmem", "net.ipv4.tcp_rmem"]);
      assert.deepEqual(t.io.writes, ["ns:11 net.ipv4.tcp_rmem=4096 16384 81920"]);
      t.applier.propose(rmem(65536, 81920, "ns:12"));
    });
    assert.equal(t.io.writes.length, 2);
  } finally {
    t.cleanup();
  }
});

Deno.test("deferWrites: a crash between the records' sync and the writes loses nothing; rollback puts back what was written", () => {
  const t = setupDeferred(["ns:11", "ns:12"]);
  const copies: string[] = [];
  try {
    // What a crash would leave: the state directory as it is on disk at each write.
    const write = t.io.write.bind(t.io);
    t.io.write = (sysctl, netns, v) => {
      const copy = mkdtempSync(join(tmpdir(), "bpfp-crash-"));
      copies.push(copy);
      for (const f of Deno.readDirSync(t.journal.dir)) {
        if (f.isFile && !f.name.endsWith(".lock")) {
          Deno.copyFileSync(join(t.journal.dir, f.name), join(copy, f.name));
        }
      }
      write(sysctl, netns, v);
    };
    t.drain(() => {
      t.applier.propose(rmem(65536, 81920, "ns:11"));
      t.applier.propose(rmem(65536, 98304, "ns:12"));
    });
    assert.equal(copies.length, 2);
    const plan = (copy: string, live: Record<string, number>) =>
      Journal.open(copy, { create: false }).planRollback((netns) => [4096, 16384, live[netns]]);
    // Crash before the first write: both records are there, both values still the originals.
    const before = plan(copies[0], { "ns:11": 65536, "ns:12": 65536 });
    assert.deepEqual(before.restore, []);
    assert.deepEqual(before.skipped.map((s) => `${s.netns} ${s.code}`).sort(), [
      "ns:11 at-original",
      "ns:12 at-original",
    ]);
    // Crash between the two writes: the first is put back, the second was never made.
    const between = plan(copies[1], { "ns:11": 81920, "ns:12": 65536 });
    assert.deepEqual(between.restore.map((r) => `${r.netns} ${String(r.to)}`), [
      "ns:11 4096,16384,65536",
    ]);
    assert.deepEqual(between.skipped.map((s) => `${s.netns} ${s.code}`), ["ns:12 at-original"]);
  } finally {
    for (const c of copies) rmSync(c, { recursive: true, force: true });
    t.cleanup();
  }
});

Deno.test("deferWrites: when the records cannot be appended, nothing is written", () => {
  const t = setupDeferred(["ns:11"]);
  try {
    const proto = Deno.FsFile.prototype;
    const real = proto.writeSync;
    proto.writeSync = () => {
      throw new Deno.errors.PermissionDenied("injected");
    };
    try {
      t.drain(() => {
        assert.equal(t.applier.propose(rmem(65536, 81920, "ns:11")), true);
      });
    } catch {
      // the batch's last append may fail the same way: the daemon logs it
    } finally {
      proto.writeSync = real;
    }
    assert.deepEqual(t.io.writes, []);
    assert.equal(t.lines.filter((l) => l.startsWith("E could not change")).length, 1);
    assert.equal(t.stats.scenarios.size, 0);
  } finally {
    t.cleanup();
  }
});

Deno.test("our own writes are known as ours for 5 s, each namespace's, then forgotten", () => {
  const t = setup();
  try {
    for (const ns of ["global", "4026532100"]) {
      t.io.values.set(`${ns} net.ipv4.tcp_rmem`, [4096, 16384, 65536]);
    }
    assert.equal(t.applier.propose(rmem(65536, 81920)), true);
    t.tick(3000);
    assert.equal(t.applier.propose(rmem(65536, 98304, "4026532100")), true);
    // The event's text as the kernel prints it (tabs) matches the value as written.
    assert.ok(t.applier.isOwnRecentWrite("net.ipv4.tcp_rmem", "4096\t16384\t81920\n"));
    assert.ok(t.applier.isOwnRecentWrite("net.ipv4.tcp_rmem", "4096 16384 98304"));
    assert.ok(!t.applier.isOwnRecentWrite("net.ipv4.tcp_rmem", "4096 16384 65536"));
    assert.ok(!t.applier.isOwnRecentWrite("net.ipv4.tcp_wmem", "4096 16384 81920"));
    t.tick(2500); // the first write is 5.5 s old, the second 2.5 s
    assert.ok(!t.applier.isOwnRecentWrite("net.ipv4.tcp_rmem", "4096 16384 81920"));
    assert.ok(t.applier.isOwnRecentWrite("net.ipv4.tcp_rmem", "4096 16384 98304"));
    t.tick(10_000);
    t.io.values.set("global net.ipv4.tcp_rmem", [4096, 16384, 81920]);
    assert.equal(t.applier.propose(rmem(81920, 131072)), true); // drops the expired ones
    assert.ok(!t.applier.isOwnRecentWrite("net.ipv4.tcp_rmem", "4096 16384 98304"));
    assert.ok(t.applier.isOwnRecentWrite("net.ipv4.tcp_rmem", "4096 16384 131072"));
  } finally {
    t.cleanup();
  }
});
