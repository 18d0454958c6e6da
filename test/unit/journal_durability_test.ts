/**
 * Which records are fdatasync'ed when (journal.ts, "Durability"): none on the daemon's change path
 * (announce, appendAnnounced, recordWritten, recordNotWritten, pruneNetns), one per decision
 * (overrides, the CLI's writers), the deferred sync from the tick within its bound (log_sync.ts),
 * and what is left at close. A real journal in a temp dir; fdatasync calls counted by the log's
 * own counter and, for every file, at the runtime's FsFile.
 */
import assert from "node:assert/strict";
import { Journal } from "../../src/daemon/journal.ts";
import { LogAppender } from "../../src/daemon/journal_log.ts";
import { DeferredLogSync, LOG_SYNC_EVERY_MS } from "../../src/daemon/log_sync.ts";
import { inTempDir } from "../support/temp_dir.ts";

const RMEM = "net.ipv4.tcp_rmem";

const withDir = (fn: (dir: string) => void | Promise<void>) => inTempDir("bpfp-durability-", fn);

/** fdatasync calls of every file (sync and async) while `fn` runs. */
async function countingSyncs(fn: () => unknown): Promise<number> {
  const proto = Deno.FsFile.prototype;
  const [sync, async] = [proto.syncDataSync, proto.syncData];
  let n = 0;
  proto.syncDataSync = function (this: Deno.FsFile) {
    n++;
    return sync.call(this);
  };
  proto.syncData = function (this: Deno.FsFile) {
    n++;
    return async.call(this);
  };
  try {
    await fn();
  } finally {
    Object.assign(proto, { syncDataSync: sync, syncData: async });
  }
  return n;
}

/** One change as the daemon's applier makes it (one wake-up: a batch). */
function daemonChange(j: Journal, ns: string, max: number): void {
  j.batch(() => {
    j.announce(ns, RMEM, "tcp_buffer", [4096, 131072, max - 1], [4096, 131072, max]);
    j.appendAnnounced();
    j.recordWritten(ns, RMEM, [4096, 131072, max]);
  });
}

Deno.test(
  "the daemon's change path makes no fdatasync, and each record is in the log (for any reader) before its write",
  withDir(async (dir) => {
    const j = Journal.open(dir);
    // Another handle, as `bpfpilot rollback` after a kill -9 (opened before: open takes the lock).
    const reader = Journal.open(dir);
    try {
      const syncs = await countingSyncs(() => {
        for (let i = 0; i < 20; i++) {
          j.batch(() => {
            j.announce(`ns${i}`, RMEM, "tcp_buffer", [4096, 131072, 6291456], [4096, 131072, 7e6]);
            j.appendAnnounced();
            // Where the sysctl is written: the other handle reads the record from the files.
            assert.deepEqual(reader.entry(`ns${i}`, RMEM)?.pending, [4096, 131072, 7e6]);
            j.recordWritten(`ns${i}`, RMEM, [4096, 131072, 7e6]);
          });
        }
        j.batch(() => j.recordNotWritten("ns0", RMEM));
        assert.equal(j.pruneNetns((ns) => ns === "ns1"), 1);
        // Outside a batch too (the applier's write at once).
        j.announce("ns2", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
      });
      assert.equal(syncs, 0, "no fdatasync for 20 changes, a refused write and a prune");
      assert.equal(j.logSyncs, 0);
      assert.ok(j.hasUnsynced());
    } finally {
      reader.close();
      j.close();
    }
  }),
);

Deno.test(
  "decision records are fdatasync'ed before they return, and carry the waiting change records with them",
  withDir(async (dir) => {
    const j = Journal.open(dir);
    try {
      const steps: [string, () => unknown][] = [
        [
          "markOverride",
          () =>
            j.markOverride({ netns: "ns1", sysctl: RMEM, tuner: "tcp_buffer", pid: 1, comm: "x" }),
        ],
        ["clearOverrides (enable)", () => j.clearOverrides(RMEM)],
        ["dropOverrides (session lifetime)", () => {
          j.markOverride({ netns: "ns1", sysctl: RMEM, tuner: "tcp_buffer", pid: 1, comm: "x" });
          daemonChange(j, "ns3", 9);
          return j.dropOverrides(() => true);
        }],
        [
          "recordOriginal (audit --apply)",
          () => j.recordOriginal("ns4", RMEM, "audit", [1, 2, 3], [1, 2, 4]),
        ],
        ["forgetMany (rollback)", () => j.forgetMany([{ netns: "ns4", sysctl: RMEM }])],
      ];
      for (const [what, step] of steps) {
        daemonChange(j, "ns2", 100 + steps.findIndex(([w]) => w === what));
        assert.ok(j.hasUnsynced(), `${what}: a change waits`);
        const before = j.logSyncs;
        const syncs = await countingSyncs(step);
        assert.ok(syncs >= 1, `${what}: fdatasync'ed (${syncs})`);
        assert.equal(j.logSyncs - before, syncs, `${what}: each one the log's`);
        assert.ok(!j.hasUnsynced(), `${what}: the change before it is durable too`);
      }
    } finally {
      j.close();
    }
  }),
);

Deno.test(
  "the deferred sync: the first waiting record goes at the next tick, then at most one sync per period, none when nothing waits",
  withDir(async (dir) => {
    const j = Journal.open(dir);
    const errors: unknown[] = [];
    const sync = new DeferredLogSync(j, (e) => errors.push(e));
    try {
      assert.equal(sync.tick(0), false, "nothing waits");
      daemonChange(j, "ns1", 1);
      assert.equal(sync.tick(1000), true, "a first record: synced at once");
      daemonChange(j, "ns1", 2); // while that sync runs: not covered by it
      assert.equal(sync.tick(1500), false, "one at a time");
      await sync.settled();
      assert.equal(j.logSyncs, 1);
      assert.ok(j.hasUnsynced(), "the record appended during the sync still waits");
      for (let t = 2000; t < 1000 + LOG_SYNC_EVERY_MS; t += 1000) {
        assert.equal(sync.tick(t), false, `${t} ms: within the period`);
      }
      assert.equal(sync.tick(1000 + LOG_SYNC_EVERY_MS), true, "due once the period has passed");
      await sync.settled();
      assert.equal(j.logSyncs, 2);
      assert.ok(!j.hasUnsynced());
      assert.equal(sync.tick(60_000), false, "nothing waits: no sync");
      assert.equal(j.logSyncs, 2);
      assert.deepEqual(errors, []);
      // A stream of changes, one tick a second for a minute: a sync every 5 s, none missed.
      let syncs = 0;
      for (let t = 100_000; t < 160_000; t += 1000) {
        daemonChange(j, "ns1", t);
        if (sync.tick(t)) syncs++;
        await sync.settled();
      }
      assert.equal(syncs, 60_000 / LOG_SYNC_EVERY_MS);
      assert.equal(j.logSyncs, 2 + syncs);
    } finally {
      await sync.settled();
      j.close();
    }
  }),
);

Deno.test(
  "close: a compaction makes the records durable (no fdatasync of the log); when it cannot run, the log is fdatasync'ed",
  withDir((dir) => {
    const j = Journal.open(dir);
    daemonChange(j, "ns1", 1);
    j.close();
    assert.equal(j.logSyncs, 0, "folded into state.json (fsync'ed) instead");
    assert.ok(!j.hasUnsynced());
    assert.equal(Journal.open(dir).entry("ns1", RMEM)?.changes, 1);

    const k = Journal.open(dir);
    daemonChange(k, "ns2", 1);
    // state.json unreadable (a directory in its place): no compaction at close.
    Deno.renameSync(`${dir}/state.json`, `${dir}/state.json.aside`);
    Deno.mkdirSync(`${dir}/state.json/x`, { recursive: true });
    k.close();
    assert.equal(k.logSyncs, 1, "the log fdatasync'ed instead");
    assert.ok(!k.hasUnsynced());
  }),
);

Deno.test(
  "LogAppender: appends not synced are owed until sync(), which reopens the log by path once closed",
  withDir(async (dir) => {
    const log = new LogAppender(`${dir}/state.log`);
    let r = log.append('{"s":1}\n', false, 0, null);
    r = log.append('{"s":2}\n', false, r.size, r.ino, r.size);
    assert.ok(log.unsynced);
    assert.equal(log.syncs, 0);
    log.close();
    log.sync();
    assert.equal(log.syncs, 1);
    assert.ok(!log.unsynced);
    log.sync();
    assert.equal(log.syncs, 1, "nothing owed: no fdatasync");
    r = log.append('{"s":3}\n', true, r.size, null);
    assert.equal(log.syncs, 2, "a durable append syncs at once");
    log.append('{"s":4}\n', false, r.size, r.ino, r.size);
    await log.syncInBackground();
    assert.equal(log.syncs, 3);
    assert.ok(!log.unsynced);
    log.close();
    assert.equal(Deno.readTextFileSync(`${dir}/state.log`).split("\n").length, 5);
  }),
);

Deno.test(
  "LogAppender: sync() and syncInBackground() settle alike: no log at the path is nothing to sync; appends made meanwhile stay owed",
  withDir(async (dir) => {
    const path = `${dir}/state.log`;
    const log = new LogAppender(path);
    log.append('{"s":1}\n', false, 0, null);
    log.close();
    Deno.removeSync(path); // a compaction by another process replaced it, then removed it
    log.sync();
    assert.deepEqual([log.unsynced, log.syncs], [false, 0], "sync(): settled, no fdatasync");
    log.append('{"s":2}\n', false, 0, null);
    log.close();
    Deno.removeSync(path);
    await log.syncInBackground();
    assert.deepEqual([log.unsynced, log.syncs], [false, 0], "in the background: the same");
    const r = log.append('{"s":3}\n', false, 0, null);
    const running = log.syncInBackground();
    log.append('{"s":4}\n', false, r.size, r.ino, r.size); // while it runs
    await running;
    assert.deepEqual([log.unsynced, log.syncs], [true, 1], "the later append is still owed");
    log.sync();
    assert.deepEqual([log.unsynced, log.syncs], [false, 2], "synced through the open log");
    log.close();
  }),
);
