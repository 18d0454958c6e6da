/**
 * The daemon's background fold of the log into state.json (journal.ts, "Folding in the
 * background"): a crash (the files as a step left them, opened afresh) and a reader between every
 * two steps read what the writer holds, with changes and decisions made meanwhile; another writer
 * folding meanwhile makes it give up; the main thread makes no fsync of its own; close() and
 * settled(). A real journal in temp dirs.
 */
import assert from "node:assert/strict";
import { type FoldStep, Journal } from "../../src/daemon/journal.ts";
import { removeStaleTemps } from "../../src/daemon/journal_files.ts";
import { parseState, serializeState, statePieces, utf8 } from "../../src/daemon/journal_format.ts";
import { inTempDir } from "../support/temp_dir.ts";

const RMEM = "net.ipv4.tcp_rmem";
const withDir = (fn: (dir: string) => void | Promise<void>) => inTempDir("bpfp-fold-", fn);

let max = 7_000_000;
let hookFailed: unknown = null;

/** Fails with the first failure of a fold hook since the last call. */
function checkHook(): void {
  const e = hookFailed;
  hookFailed = null;
  if (e) throw e;
}
/** The value each namespace was last given (what every reader must find, whatever happened). */
const written = new Map<string, number>();

/** One change as the daemon's applier makes it (one wake-up: a batch), two records. */
function daemonChange(j: Journal, ns: string): void {
  const v = max++;
  written.set(ns, v);
  j.batch(() => {
    j.announce(ns, RMEM, "tcp_buffer", [4096, 131072, v - 1], [4096, 131072, v]);
    j.appendAnnounced();
    j.recordWritten(ns, RMEM, [4096, 131072, v]);
  });
}

/** A journal as the daemon's; the hook's failures are the test's (a fold's are only warned of). */
function openDaemon(dir: string, hook?: (s: FoldStep) => void): Journal {
  const foldStep = hook && ((step: FoldStep) => {
    try {
      hook(step);
    } catch (e) {
      hookFailed ??= e;
    }
  });
  written.clear();
  const j = Journal.open(dir, {
    foldInBackground: true,
    foldStep,
    bootId: () => "boot",
    warn: (m) => {
      throw new Error(`unexpected warning: ${m}`);
    },
  });
  j.claimDaemon();
  return j;
}

/** state.json's inode (-1: none yet). */
function stateIno(dir: string): number {
  try {
    return Deno.statSync(`${dir}/state.json`).ino ?? 0;
  } catch {
    return -1;
  }
}

/** What a journal reads: its entries and overrides; checked against what was written. */
function view(j: Journal): unknown {
  const entries = j.changedEntries();
  const found = entries.filter((e) => e.lastWritten !== null)
    .map((e) => [e.netns, (e.lastWritten as number[])[2]]);
  assert.deepEqual(new Map(found as [string, number][]), written, "every change read, the last");
  return { entries, overrides: j.overrides() };
}

/**
 * The files of `dir` as they are now, in a new directory: what a `kill -9` here leaves (every
 * write(2) is in the page cache, which survives it).
 */
function crashCopy(dir: string): string {
  const copy = Deno.makeTempDirSync({ prefix: "bpfp-fold-crash-" });
  for (const item of Deno.readDirSync(dir)) {
    if (item.isFile) Deno.copyFileSync(`${dir}/${item.name}`, `${copy}/${item.name}`);
  }
  return copy;
}

/** The sequence numbers in the log past state.json's: consecutive from the one after it. */
function assertLogContinues(dir: string): void {
  let state = { logSeq: 0 };
  try {
    state = JSON.parse(Deno.readTextFileSync(`${dir}/state.json`));
  } catch { /* none yet */ }
  let log = "";
  try {
    log = Deno.readTextFileSync(`${dir}/state.log`);
  } catch { /* none */ }
  const seqs = log.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l).s as number);
  const after = seqs.filter((s) => s > state.logSeq);
  assert.deepEqual(after, after.map((_, i) => state.logSeq + 1 + i), "no record lost or twice");
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], "in order");
}

/** Reads the files of `dir`, copied as they are now and opened afresh (a crash here). */
function afterCrash(dir: string): unknown {
  const copy = crashCopy(dir);
  try {
    const j = Journal.open(copy, { bootId: () => "boot" });
    try {
      return view(j);
    } finally {
      j.close();
    }
  } finally {
    Deno.removeSync(copy, { recursive: true });
  }
}

/** Changes until the log holds enough records to fold (256 at 50 entries). */
function fillLog(j: Journal, entries = 50): void {
  for (let i = 0; i < 140; i++) daemonChange(j, `ns${i % entries}`);
}

Deno.test(
  "background fold: a crash or a reader between any two steps reads what the writer holds; changes and a decision meanwhile; nothing lost or twice",
  withDir(async (dir) => {
    const steps: FoldStep[] = [];
    const j: Journal = openDaemon(dir, (step) => {
      steps.push(step);
      const crashed = afterCrash(dir);
      assert.deepEqual(crashed, view(j), `a crash after "${step}"`);
      assertLogContinues(dir);
      const reader = Journal.open(dir, { bootId: () => "boot" });
      assert.deepEqual(view(reader), view(j), `a reader after "${step}"`);
      reader.close();
      // The daemon goes on meanwhile: changes, and once a decision (synced at once), which the
      // log's copy must then fsync (another round).
      for (let i = 0; i < 3; i++) daemonChange(j, `ns${(steps.length * 7 + i) % 60}`);
      if (step === "log copied" && steps.filter((s) => s === "log copied").length === 1) {
        j.markOverride({ netns: "ns3", sysctl: RMEM, tuner: "tcp_buffer", pid: 1, comm: "sh" });
      }
    });
    const ino = stateIno(dir);
    fillLog(j);
    await j.settled();
    checkHook();
    assert.deepEqual(steps, [
      "state written",
      "state renamed",
      "state durable",
      "log copied",
      "log copied", // the decision appended during the first copy: copied and fsynced again
      "log replaced",
      "done",
    ]);
    assert.notEqual(stateIno(dir), ino, "state.json replaced");
    const state = JSON.parse(Deno.readTextFileSync(`${dir}/state.json`));
    assert.ok(state.logSeq >= 256, `folded up to record ${state.logSeq}`);
    assertLogContinues(dir);
    const log = Deno.readTextFileSync(`${dir}/state.log`).trim().split("\n");
    // Only what came after the snapshot: the last 12 changes and those made at each step.
    assert.equal(JSON.parse(log[0]).s, state.logSeq + 1, "the log holds only records after it");
    assert.ok(log.length < 100, `${log.length} records`);
    assert.ok(j.hasUnsynced(), "the records copied without an fsync are still owed");
    assert.deepEqual(afterCrash(dir), view(j));
    // No temp file left.
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith(".")),
      [],
    );
    // It goes on folding: another fold later.
    const before = stateIno(dir);
    steps.length = 0;
    fillLog(j);
    await j.settled();
    checkHook();
    assert.ok(steps.includes("done"));
    assert.notEqual(stateIno(dir), before);
    assertLogContinues(dir);
    const expected = view(j);
    j.close();
    assert.deepEqual(afterCrash(dir), expected);
  }),
);

for (const at of ["state written", "state durable", "log copied"] as const) {
  Deno.test(
    `background fold: another writer folding after "${at}" makes it give up; nothing lost`,
    withDir(async (dir) => {
      const steps: FoldStep[] = [];
      const j = openDaemon(dir, (step) => {
        steps.push(step);
        if (step !== at) return;
        // `bpfpilot audit --apply` meanwhile: a durable record, and a fold at its close.
        const other = Journal.open(dir, { bootId: () => "boot" });
        other.recordOriginal("ns99", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
        other.close();
      });
      fillLog(j);
      await j.settled();
      checkHook();
      assert.equal(steps.at(-1), at, "it stopped there");
      assert.ok(j.entry("ns99", RMEM), "the other writer's record is read");
      daemonChange(j, "ns1"); // and appends go on to the log that writer left
      assertLogContinues(dir);
      assert.deepEqual(afterCrash(dir), view(j));
      const names = [...Deno.readDirSync(dir)].map((e) => e.name);
      assert.deepEqual(names.filter((n) => n.startsWith(".")), [], "its temp files removed");
      j.close();
    }),
  );
}

Deno.test(
  "background fold: the main thread makes no fsync of its own (changes only append)",
  withDir(async (dir) => {
    const j = openDaemon(dir);
    const proto = Deno.FsFile.prototype;
    const [syncSync, syncDataSync] = [proto.syncSync, proto.syncDataSync];
    let onMain = 0;
    proto.syncSync = function (this: Deno.FsFile) {
      onMain++;
      return syncSync.call(this);
    };
    proto.syncDataSync = function (this: Deno.FsFile) {
      onMain++;
      return syncDataSync.call(this);
    };
    const ino = stateIno(dir);
    try {
      fillLog(j);
      // Changes while it runs (the event loop turns between them, as between wake-ups).
      while (stateIno(dir) === ino) {
        daemonChange(j, "ns7");
        await new Promise((r) => setTimeout(r, 1));
      }
      await j.settled();
      checkHook();
    } finally {
      Object.assign(proto, { syncSync, syncDataSync });
    }
    assert.equal(onMain, 0);
    assertLogContinues(dir);
    j.close();
  }),
);

Deno.test(
  "background fold: a decision while the replaced log's name is not on disk yet fsyncs the directory",
  withDir(async (dir) => {
    const proto = Deno.FsFile.prototype;
    const syncSync = proto.syncSync;
    let dirSyncs = -1;
    const j = openDaemon(dir, (step) => {
      if (step !== "log replaced") return;
      dirSyncs = 0;
      proto.syncSync = function (this: Deno.FsFile) {
        if (this.statSync().isDirectory) dirSyncs++;
        return syncSync.call(this);
      };
      try {
        j.markOverride({ netns: "ns3", sysctl: RMEM, tuner: "tcp_buffer", pid: 1, comm: "sh" });
      } finally {
        proto.syncSync = syncSync;
      }
    });
    fillLog(j);
    await j.settled();
    checkHook();
    assert.equal(dirSyncs, 1);
    j.close();
  }),
);

Deno.test(
  "background fold: close() with one in flight stops it, and folds itself; settled() awaits it",
  withDir(async (dir) => {
    let closed = false;
    const steps: FoldStep[] = [];
    const j = openDaemon(dir, (step) => {
      steps.push(step);
      if (step === "state renamed") {
        j.close();
        closed = true;
      }
    });
    fillLog(j);
    const expected = view(j);
    await j.settled();
    checkHook();
    assert.ok(closed);
    assert.deepEqual(steps, ["state written", "state renamed"], "stopped at close");
    assert.equal(Deno.statSync(`${dir}/state.log`).size, 0, "close folded everything");
    assert.deepEqual(afterCrash(dir), expected);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith(".")),
      [],
    );
  }),
);

Deno.test(
  "a journal opened while the daemon runs leaves the daemon's temp files (its fold may be using them)",
  withDir((dir) => {
    for (
      const name of [`.state.json.tmp-${Deno.pid}-x`, ".state.log.tmp-1-y", ".state.json.tmp-2-z"]
    ) {
      Deno.writeTextFileSync(`${dir}/${name}`, "");
    }
    removeStaleTemps(dir, Deno.pid);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [
      `.state.json.tmp-${Deno.pid}-x`,
    ]);
    removeStaleTemps(dir, null);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
  }),
);

/** state.json's text, and the same state serialised afresh (every record stringified again). */
function stateTextAndFull(dir: string): [string, string] {
  const text = Deno.readTextFileSync(`${dir}/state.json`);
  return [text, serializeState(parseState(text, `${dir}/state.json`))];
}

Deno.test(
  "background fold: the snapshot is the text a full serialisation gives, after changes, overrides, a forget and another writer",
  withDir(async (dir) => {
    const j = openDaemon(dir);
    fillLog(j);
    await j.settled();
    assert.deepEqual(...stateTextAndFull(dir));
    // Between folds: entries changed and added, overrides set and cleared, an entry forgotten,
    // another writer's records (read from the log: entries this handle did not compare).
    j.markOverride({ netns: "ns3", sysctl: RMEM, tuner: "tcp_buffer", pid: 1, comm: "sh" });
    j.markOverride({ netns: "ns4", sysctl: RMEM, tuner: "tcp_buffer", pid: 2, comm: "sh" });
    j.clearOverrides("tcp_buffer");
    j.markOverride({ netns: "ns5", sysctl: RMEM, tuner: "tcp_buffer", pid: 3, comm: "sh" });
    const other = Journal.open(dir, { bootId: () => "boot" });
    other.recordOriginal("ns99", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    other.recordWritten("ns8", RMEM, [4096, 131072, 123]);
    other.close(); // folds at once (the CLI): state.json read again
    written.set("ns8", 123);
    j.forget("ns9", RMEM);
    written.delete("ns9");
    const ino = stateIno(dir);
    fillLog(j, 60);
    await j.settled();
    assert.notEqual(stateIno(dir), ino, "folded again");
    const [text, full] = stateTextAndFull(dir);
    assert.equal(text, full);
    const state = JSON.parse(text);
    assert.deepEqual(state.overrides.map((o: { netns: string }) => o.netns), ["ns5"]);
    assert.ok(state.entries.some((e: { netns: string }) => e.netns === "ns99"));
    assert.deepEqual(afterCrash(dir), view(j));
    j.close();
    assert.deepEqual(...stateTextAndFull(dir));
  }),
);

Deno.test(
  "background fold: the snapshot serialises only the entries changed since they were recorded, not all of them",
  withDir(async (dir) => {
    const j = openDaemon(dir);
    for (let i = 0; i < 300; i++) daemonChange(j, `ns${i}`); // 300 entries (600 records)
    await j.settled();
    const folds = j.folds;
    const stringify = JSON.stringify;
    let entriesStringified = 0;
    JSON.stringify = function (this: unknown, ...args: Parameters<typeof stringify>) {
      const v = args[0] as { sysctl?: unknown; original?: unknown } | null;
      if (v && typeof v === "object" && "sysctl" in v && "original" in v) entriesStringified++;
      return stringify.apply(this, args);
    } as typeof stringify;
    try {
      // Until a change starts the next fold (its snapshot runs in that change).
      for (let i = 0; j.folds === folds; i++) {
        entriesStringified = 0;
        daemonChange(j, `ns${i % 300}`);
      }
    } finally {
      JSON.stringify = stringify;
    }
    await j.settled();
    assert.ok(
      entriesStringified < 10,
      `${entriesStringified} entries serialised in the last change`,
    );
    assert.deepEqual(...stateTextAndFull(dir));
    assert.deepEqual(afterCrash(dir), view(j));
    j.close();
  }),
);

Deno.test("serializeState's text (statePieces joined) reads back as the state; utf8 encodes as TextEncoder does", () => {
  const entry = {
    netns: "ns1",
    sysctl: RMEM,
    tuner: "tcp_buffer",
    original: [4096, 131072, 6291456],
    lastWritten: "bbr",
    pending: null,
    changes: 2,
    recordedAt: "2026-12-02T00:00:00.000Z",
    changedAt: null,
  };
  const override = {
    netns: "global",
    sysctl: RMEM,
    tuner: "t",
    pid: 1,
    comm: "é✓\u{1F600}",
    at: "2026-12-02T00:00:00.000Z",
  };
  const base = {
    format: "bpfpilot-state" as const,
    version: 2 as const,
    productVersion: "1.0",
    updatedAt: "2026-12-02T00:00:00.000Z",
    logSeq: 7,
  };
  for (
    const [entries, overrides] of [
      [[], []],
      [[entry], []],
      [[], [override]],
      [[entry, { ...entry, netns: "ns2" }, { ...entry, netns: "ns3" }], [override, override]],
    ] as const
  ) {
    const state = { ...base, entries: [...entries], overrides: [...overrides] };
    const text = serializeState(state);
    assert.deepEqual(utf8(text), new TextEncoder().encode(text));
    assert.deepEqual(parseState(text, "x"), state);
    assert.deepEqual(JSON.parse(text), state);
  }
  // One record a line, as an administrator reads state.json.
  const one = statePieces({ ...base, entries: [entry], overrides: [override] }).join("");
  assert.equal(
    one,
    `{\n  "format": "bpfpilot-state",\n  "version": 2,\n  "productVersion": "1.0",\n` +
      `  "updatedAt": "2026-12-02T00:00:00.000Z",\n  "logSeq": 7,\n` +
      `  "entries": [\n    ${JSON.stringify(entry)}\n  ],\n` +
      `  "overrides": [\n    ${JSON.stringify(override)}\n  ]\n}\n`,
  );
});

/** Set while another writer (of the test's) works: its fsyncs are not the daemon's. */
let othersSyncing = false;

/** Counts the fsyncs made on the main thread (syncSync, syncDataSync) while `fn` runs. */
async function mainThreadSyncs(fn: () => Promise<void>): Promise<number> {
  const proto = Deno.FsFile.prototype;
  const [syncSync, syncDataSync] = [proto.syncSync, proto.syncDataSync];
  let onMain = 0;
  proto.syncSync = function (this: Deno.FsFile) {
    if (!othersSyncing) onMain++;
    return syncSync.call(this);
  };
  proto.syncDataSync = function (this: Deno.FsFile) {
    if (!othersSyncing) onMain++;
    return syncDataSync.call(this);
  };
  try {
    await fn();
  } finally {
    Object.assign(proto, { syncSync, syncDataSync });
  }
  return onMain;
}

Deno.test(
  "closeInBackground: the stop's fold and sync run off the main thread; everything folded and on disk, a crash at any step reads the same",
  withDir(async (dir) => {
    const steps: FoldStep[] = [];
    let closing = false;
    let expected: unknown = null;
    const j = openDaemon(dir, (step) => {
      if (!closing) return;
      steps.push(step);
      assert.deepEqual(afterCrash(dir), expected, `a crash after "${step}" of the close`);
      assertLogContinues(dir);
    });
    for (let i = 0; i < 100; i++) daemonChange(j, `ns${i % 50}`); // 200 records: no fold yet
    await j.settled();
    assert.equal(j.folds, 0);
    assert.ok(j.hasUnsynced());
    expected = view(j);
    closing = true;
    const syncs = await mainThreadSyncs(() => j.closeInBackground());
    checkHook();
    assert.equal(syncs, 0, "no fsync on the main thread");
    assert.deepEqual(steps, [
      "state written",
      "state renamed",
      "state durable",
      "log copied",
      "log replaced",
      "done",
    ]);
    assert.equal(Deno.statSync(`${dir}/state.log`).size, 0, "folded everything");
    assert.equal(JSON.parse(Deno.readTextFileSync(`${dir}/state.json`)).entries.length, 50);
    assert.deepEqual(afterCrash(dir), expected);
    assert.equal(Journal.daemonPid(dir), null, "the daemon claim released");
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith(".")),
      [],
    );
  }),
);

Deno.test(
  "closeInBackground with a fold in flight: it finishes, then the records appended meanwhile are folded; no fsync on the main thread",
  withDir(async (dir) => {
    const steps: FoldStep[] = [];
    const j = openDaemon(dir, (step) => {
      steps.push(step);
      if (step === "state durable" && steps.length === 3) daemonChange(j, "ns77");
    });
    fillLog(j);
    assert.equal(j.folds, 1, "a fold in flight");
    const syncs = await mainThreadSyncs(async () => {
      const closed = j.closeInBackground();
      daemonChange(j, "ns78"); // the stop's last change, while the fold runs
      await closed;
    });
    checkHook();
    assert.equal(syncs, 0);
    assert.equal(j.folds, 2, "the rest folded once more");
    assert.equal(steps.filter((s) => s === "done").length, 2);
    assert.equal(Deno.statSync(`${dir}/state.log`).size, 0);
    afterCrash(dir); // every change read (view), ns77 and ns78 included
  }),
);

Deno.test(
  "closeInBackground whose fold another writer overtakes: no fold on the main thread, the log synced, nothing lost",
  withDir(async (dir) => {
    let closing = false;
    const j = openDaemon(dir, (step) => {
      if (!closing || step !== "state written") return;
      othersSyncing = true;
      try {
        const other = Journal.open(dir, { bootId: () => "boot" });
        other.recordOriginal("ns99", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
        other.close();
      } finally {
        othersSyncing = false;
      }
    });
    for (let i = 0; i < 20; i++) daemonChange(j, `ns${i}`);
    const folds = j.folds;
    closing = true;
    const syncs = await mainThreadSyncs(() => j.closeInBackground());
    checkHook();
    assert.equal(syncs, 0);
    assert.equal(j.folds - folds, 1, "one fold, given up; none at once after it");
    assert.ok(!j.hasUnsynced(), "the log synced");
    afterCrash(dir); // every change read
    const reader = Journal.open(dir, { bootId: () => "boot" });
    assert.ok(reader.entry("ns99", RMEM));
    assert.equal(reader.changedEntries().length, 21);
    reader.close();
  }),
);
