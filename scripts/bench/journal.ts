/**
 * What recording one change costs the daemon: a batch as the applier runs it (announce, the
 * append before the sysctl write, recordWritten) on a journal that holds the daemon's claim (so
 * `state.lock` stays open between batches, as in the daemon), measured on a state directory on
 * disk (tmpfs would make fsync free) holding 1 and 1,000 entries, compactions included. The
 * slowest 1 % is split by cause (thread_time.ts): running, waiting for a CPU, asleep in the
 * kernel, neither (steal, interrupts), and which of them started a fold of the log. The event loop
 * turns between changes, as between the daemon's wake-ups: what runs there (a background fold's
 * steps on the main thread) is timed as the longest gap. Then the deferred
 * sync the tick runs off the main thread (log_sync.ts), and a decision record (recordOriginal,
 * fdatasync'ed before it returns: the CLI's writers; overrides likewise). fdatasync calls on the
 * change path are counted with strace when it is installed (none is the target).
 */
import { spawnSync } from "node:child_process";
import { Journal } from "../../src/daemon/journal.ts";
import { fmtMs, median, row, section, withTarget } from "./report.ts";
import { splitTime, sumSplits, threadMark, type TimeSplit } from "./thread_time.ts";

const RMEM = "net.ipv4.tcp_rmem";
const CHANGES = 300;
/** First changes of new namespaces timed after them (each adds an entry). */
const FIRSTS = 100;
/** Durable records timed after the changes (each one fdatasync). */
const DECISIONS = 50;

/** Sub-millisecond figures in µs (a change without fdatasync is tens of µs). */
function fine(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : fmtMs(ms);
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

/** One turn of the event loop (a timer): a background fold's steps run there. */
function turn(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/** One change as the daemon's applier records it: one batch, the record appended before the write. */
function daemonChange(j: Journal, ns: string, from: number[], to: number[]): void {
  j.batch(() => {
    j.announce(ns, RMEM, "tcp_buffer", from, to);
    j.appendAnnounced(); // the sysctl write would follow here
    j.recordWritten(ns, RMEM, to);
  });
}

interface Timed {
  /** ms per change. */
  times: number[];
  /** ms per first change of a namespace the journal had no entry for (a new entry). */
  firsts: number[];
  /** Each change's wall time by cause, and whether it started a fold of the log. */
  splits: (TimeSplit & { fold: boolean })[];
  /** ms per turn of the event loop between changes (a fold's steps run in them). */
  gaps: number[];
  /** The longest step a background fold ran on the main thread, ms, and the longest snapshot. */
  foldStepMs: number;
  snapshotMs: number;
  /** The deferred sync after them (one fdatasync of the log), ms. */
  syncMs: number;
  /** ms per decision record (recordOriginal: fdatasync'ed before it returns). */
  decisions: number[];
  /** The daemon's closeInBackground(), ms, and the event loop's longest wait for a turn in it. */
  foldMs: number;
  closeTurnMs: number;
}

/** Milliseconds per change on a journal holding `entries` entries, and for folding the log. */
async function timeChanges(dir: string, entries: number): Promise<Timed> {
  // As the daemon opens it: folds in the background, state.lock kept open between batches.
  const j = Journal.open(dir, { foldInBackground: true });
  j.claimDaemon();
  for (let i = 0; i < entries; i++) {
    daemonChange(j, `ns${i}`, [4096, 131072, 6291456], [4096, 131072, 7e6]);
    await turn();
  }
  await j.settled();
  j.syncLog();
  const times: number[] = [];
  const splits: Timed["splits"] = [];
  const gaps: number[] = [];
  for (let c = 0; c < CHANGES; c++) {
    const ns = `ns${c % entries}`;
    const folds = j.folds;
    const before = threadMark();
    const t0 = performance.now();
    daemonChange(j, ns, [4096, 131072, 7e6 + c], [4096, 131072, 7e6 + c + 1]);
    const ms = performance.now() - t0;
    const after = threadMark();
    times.push(ms);
    splits.push({ ...splitTime(ms, before, after), fold: j.folds !== folds });
    const g0 = performance.now();
    await turn();
    gaps.push(performance.now() - g0);
  }
  await j.settled();
  const firsts: number[] = [];
  for (let c = 0; c < FIRSTS; c++) {
    const t0 = performance.now();
    daemonChange(j, `new${c}`, [4096, 131072, 6291456], [4096, 131072, 7e6]);
    firsts.push(performance.now() - t0);
  }
  let t0 = performance.now();
  j.syncLog();
  const syncMs = performance.now() - t0;
  const decisions: number[] = [];
  for (let c = 0; c < DECISIONS; c++) {
    const ns = `ns${c % entries}`, v = 8e6 + c;
    t0 = performance.now();
    j.recordOriginal(ns, RMEM, "tcp_buffer", [4096, 131072, v], [4096, 131072, v + 1]);
    j.recordWritten(ns, RMEM, [4096, 131072, v + 1]);
    decisions.push(performance.now() - t0);
  }
  const foldStepMs = j.longestFoldStepMs, snapshotMs = j.longestFoldSnapshotMs;
  // The daemon's stop: the log folded into state.json, its disk work off the main thread, while
  // a 1 ms timer measures how long the event loop waits for a turn.
  let closing = true, longestTurnMs = 0;
  const ticker = (async () => {
    while (closing) {
      const g0 = performance.now();
      await new Promise((r) => setTimeout(r, 1));
      longestTurnMs = Math.max(longestTurnMs, performance.now() - g0);
    }
  })();
  t0 = performance.now();
  await j.closeInBackground();
  const foldMs = performance.now() - t0;
  closing = false;
  await ticker;
  return {
    times,
    firsts,
    splits,
    gaps,
    foldStepMs,
    snapshotMs,
    syncMs,
    decisions,
    foldMs,
    closeTurnMs: longestTurnMs,
  };
}

export async function journalSection(root: string, deno: string): Promise<void> {
  section("journal: cost of recording one change (state dir on disk)");
  const base = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "bpfp-bench-journal-" });
  try {
    for (const entries of [1, 1000]) {
      const dir = `${base}/e${entries}`;
      const {
        times,
        firsts,
        splits,
        gaps,
        foldStepMs,
        snapshotMs,
        syncMs,
        decisions,
        foldMs,
        closeTurnMs,
      } = await timeChanges(dir, entries);
      const mean = times.reduce((a, b) => a + b, 0) / times.length;
      const at = `${entries} entr${entries === 1 ? "y" : "ies"}`;
      row(
        `one change at ${at}`,
        `${fine(median(times))}`,
        withTarget(
          entries === 1000 ? "≤ 5 ms" : "-",
          `median of ${CHANGES} changes as the daemon makes them (one batch: the record ` +
            `appended before the write, no fdatasync); mean ${fine(mean)}, p99 ` +
            `${fine(percentile(times, 0.99))}, max ${fine(Math.max(...times))} (the log is ` +
            `folded into state.json every max(256, 2 x entries) records)`,
        ),
      );
      row(`the slowest 1 % of them, by cause`, ...tailByCause(splits));
      row(
        `a background fold's longest main-thread step, ${at}`,
        fine(foldStepMs),
        `of every fold during the entries' setup and the changes (the snapshot, the renames under ` +
          `the lock, the log's last records copied; the longest snapshot ${fine(snapshotMs)}); ` +
          `their fsyncs run in the blocking pool. The ` +
          `event loop's turns between changes (a timer, where those steps run): median ` +
          `${fine(median(gaps))}, p99 ${fine(percentile(gaps, 0.99))}, max ${
            fine(Math.max(...gaps))
          }`,
      );
      row(
        `a namespace's first change at ${at}`,
        fine(median(firsts)),
        `median of ${FIRSTS} changes that each add an entry (a namespace the journal had none ` +
          `for: a growth in a new container); p99 ${fine(percentile(firsts, 0.99))}`,
      );
      row(
        `the deferred sync after them, ${at}`,
        fine(syncMs),
        `one fdatasync of the log (the tick runs it off the main thread, at most every 5 s ` +
          `while records wait)`,
      );
      row(
        `one decision record at ${at} (fdatasync'ed)`,
        fine(median(decisions)),
        `median of ${DECISIONS} recordOriginal + recordWritten (the CLI's writers; overrides ` +
          `likewise); p99 ${fine(percentile(decisions, 0.99))}`,
      );
      row(
        `folding the log into state.json, ${at}`,
        fine(foldMs),
        `at the daemon's stop (closeInBackground: a whole-file rewrite, fsync, rename, fsync dir, ` +
          `the log replaced, its disk work in the blocking pool as while it runs, once per ` +
          `max(256, 2 x entries) records); a 1 ms timer's longest wait for a turn meanwhile ` +
          `${fine(closeTurnMs)} (the longest the main thread was held)`,
      );
    }
    deviceSync(`${base}/sync-alone`);
    syncsPerChange(root, deno, `${base}/strace`);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
}

/** The changes at or above the p99, their wall time split by cause (thread_time.ts). */
function tailByCause(splits: (TimeSplit & { fold: boolean })[]): [string, string] {
  const slowest = [...splits].sort((a, b) => b.wall - a.wall)
    .slice(0, splits.length - Math.floor(0.99 * splits.length));
  const sum = sumSplits(slowest);
  const folds = slowest.filter((s) => s.fold).length;
  const p99 = slowest[slowest.length - 1];
  const parts = (s: TimeSplit) =>
    `running ${fine(s.running)}, waiting for a CPU ${fine(s.waiting)}, asleep in the kernel ` +
    `${fine(s.asleep)}, neither (steal, interrupts) ${fine(s.other)}`;
  return [
    fine(sum.wall),
    `the ${slowest.length} slowest changes (at or above the p99), ${folds} of them starting a fold of the ` +
    `log: ${parts(sum)}; the p99 change itself (${fine(p99.wall)}${p99.fold ? ", a fold" : ""}): ` +
    `${parts(p99)} (the thread's schedstat and voluntary switches around each change)`,
  ];
}

/**
 * The device's part of a change: what the journal's one durable write costs without the journal
 * (a small append to a 4 KiB file and fdatasync, as many times as the changes above), so a tail
 * in the journal's figures can be told apart from the disk's.
 */
function deviceSync(path: string): void {
  const f = Deno.openSync(path, { write: true, create: true, mode: 0o600 });
  const times: number[] = [];
  try {
    f.writeSync(new Uint8Array(4096));
    f.syncSync();
    const record = new TextEncoder().encode(`${JSON.stringify({ s: 1, put: RMEM })}\n`);
    for (let c = 0; c < CHANGES; c++) {
      const t0 = performance.now();
      f.writeSync(record);
      f.syncDataSync();
      times.push(performance.now() - t0);
    }
  } finally {
    f.close();
  }
  row(
    "fdatasync alone (the device's part)",
    fine(median(times)),
    `median of ${CHANGES} appends of one record to a 4 KiB file + fdatasync, same directory, ` +
      `no journal; p99 ${fine(percentile(times, 0.99))}, max ${fine(Math.max(...times))}`,
  );
}

/** fsync/fdatasync calls per change on the daemon's path, by strace over 100 changes at 1 entry. */
function syncsPerChange(root: string, deno: string, dir: string): void {
  if (spawnSync("sh", ["-c", "command -v strace"]).status !== 0) {
    row("durable writes per change", "n/a", "strace is not installed");
    return;
  }
  const journalUrl = new URL("../../src/daemon/journal.ts", import.meta.url).href;
  const script = `
    import { Journal } from ${JSON.stringify(journalUrl)};
    const j = Journal.open(${JSON.stringify(dir)});
    const change = (from, to) => j.batch(() => {
      j.announce("global", "${RMEM}", "tcp_buffer", from, to);
      j.appendAnnounced();
      j.recordWritten("global", "${RMEM}", to);
    });
    change([1, 2, 3], [1, 2, 4]);
    console.error("BEGIN");
    for (let i = 0; i < 100; i++) change([1, 2, 4 + i], [1, 2, 5 + i]);
    console.error("END");
  `;
  const out = spawnSync("strace", [
    "-f",
    "-e",
    "trace=fsync,fdatasync,write",
    deno,
    "eval",
    "--no-check",
    script,
  ], { encoding: "utf8", cwd: root });
  const lines = out.stderr.split("\n");
  const begin = lines.findIndex((l) => l.includes('"BEGIN'));
  const end = lines.findIndex((l) => l.includes('"END'));
  if (begin < 0 || end < 0) {
    row("durable writes per change", "n/a", `strace run failed: ${out.stderr.slice(-200)}`);
    return;
  }
  const syncs = lines.slice(begin, end).filter((l) => /\bf(data)?sync\(/.test(l)).length;
  row(
    "durable writes (fsync/fdatasync) per change",
    `${(syncs / 100).toFixed(2)}`,
    withTarget(
      "0",
      "strace over 100 changes at 1 entry, as the daemon makes them; the tick's deferred sync " +
        "adds one fdatasync per 5 s while records wait (was 1 per batch; 4 before the log)",
    ),
  );
}
