/**
 * One change end to end, many times: the daemon's real applier, journal (a state directory on
 * disk: tmpfs would make fdatasync free), kept /proc/sys files and logger, writing tcp_rmem in a
 * namespace of the benchmark's own (created, then deleted: the host's sysctls are never touched).
 * Each change runs as a wake-up with one event does: one journal batch, one deferred write (the
 * record appended before it, not fdatasync'ed). The journal is opened as the daemon opens it: its
 * folds of the log into state.json run in the background, their main-thread steps in the event
 * loop's turns between changes (timed apart: the turns' main-thread CPU), and it is closed as the
 * daemon's stop closes it (closeInBackground). The figure is the main thread's CPU
 * (CLOCK_THREAD_CPUTIME_ID) per change, the first (cold: V8 still interprets) apart from the rest
 * (warm); the daemon at 5-12 events a second sits between the two. With BPFPILOT_CHANGE_TIMING=1
 * the stages' own account follows (change_timing.ts).
 *
 * `deno run -A scripts/bench/change_path.ts [changes]` prints one JSON object; changePathSection()
 * (BPFPILOT_BENCH_SECTIONS=changepath) runs it twice, without and with the stage account.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { Journal } from "../../src/daemon/journal.ts";
import { ProposalApplier } from "../../src/daemon/applier.ts";
import { RateGate } from "../../src/daemon/rate_gate.ts";
import { DaemonStats } from "../../src/daemon/stats.ts";
import { liveSysctls } from "../../src/daemon/sysctl_io.ts";
import { changeTiming } from "../../src/daemon/change_timing.ts";
import { SysctlFiles } from "../../src/kernel/sysctl_files.ts";
import {
  heldNetnsCookie,
  netnsCookieOf,
  netnsInumOf,
  netnsKey,
  netnsRegistry,
} from "../../src/kernel/netns.ts";
import { openLibc } from "../../src/kernel/libc.ts";
import { createLogger } from "../../src/log/logger.ts";
import type { Proposal } from "../../src/tuning/proposal.ts";
import { median, row, section } from "./report.ts";

const RMEM = "net.ipv4.tcp_rmem";

export interface ChangePathResult {
  changes: number;
  /** Main-thread CPU of each change, µs, in order. */
  threadUs: number[];
  /** Wall time of each change, µs. */
  wallUs: number[];
  /** The stages' own account (BPFPILOT_CHANGE_TIMING=1), else null. */
  stages: string | null;
  /** Main-thread CPU of each paced change (PACED_GAP_MS apart, after the others), µs. */
  pacedUs: number[];
  /**
   * Main-thread CPU of each turn of the event loop after a back-to-back change, µs: what runs
   * there (a background fold's snapshot, renames and slices; timers), and the folds begun.
   */
  turnUs: number[];
  folds: number;
  /** The daemon's close of the journal (closeInBackground): wall and main-thread CPU, µs. */
  closeWallUs: number;
  closeThreadUs: number;
}

/**
 * Changes made at the daemon's pace after the back-to-back ones: the code is compiled, but the
 * CPU's caches and branch history are cold again after each gap, as for the daemon's 5-12 events
 * a second.
 */
const PACED_CHANGES = 50, PACED_GAP_MS = 100;

function threadClock(): () => number {
  const libc = openLibc();
  if (!libc) throw new Error("no libc: cannot read CLOCK_THREAD_CPUTIME_ID");
  const ts = new BigInt64Array(2);
  const buf = new Uint8Array(ts.buffer);
  return () => {
    libc.clock_gettime(3, buf); // CLOCK_THREAD_CPUTIME_ID
    return Number(ts[0]) * 1e9 + Number(ts[1]);
  };
}

/**
 * One change at a time (step: its main-thread CPU and wall µs); close() closes the journal as the
 * daemon's stop does and removes everything.
 */
export interface ChangePath {
  step(): { threadUs: number; wallUs: number };
  /** The main thread's CPU clock, ns. */
  clock(): number;
  /** Folds of the log the journal began. */
  folds(): number;
  /** Removes everything; returns the journal's close alone (wall and main-thread CPU, µs). */
  close(): Promise<{ wallUs: number; threadUs: number }>;
}

/** A namespace of its own (tag: part of its name), a state directory, the daemon's pieces. */
export async function openChangePath(tag = "cp"): Promise<ChangePath> {
  const name = `bpfp-bench-${tag}-${Deno.pid}`;
  const stateDir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: `bpfp-bench-${tag}-` });
  const devNull = Deno.openSync("/dev/null", { write: true });
  const files = new SysctlFiles({ cookieNow: heldNetnsCookie });
  let journal: Journal | null = null;
  const clock = threadClock();
  const close = async () => {
    const w0 = performance.now(), t0 = clock();
    try {
      await journal?.closeInBackground();
      return { wallUs: (performance.now() - w0) * 1e3, threadUs: (clock() - t0) / 1e3 };
    } finally {
      files.closeAll();
      devNull.close();
      spawnSync("ip", ["netns", "del", name]);
      Deno.removeSync(stateDir, { recursive: true });
    }
  };
  spawnSync("ip", ["netns", "add", name]);
  try {
    const key = netnsKey(netnsInumOf(`/run/netns/${name}`));
    netnsRegistry().discover();
    journal = Journal.open(stateDir, {
      netnsCookie: (k) => netnsCookieOf(k, { verify: true }),
      entryNetnsCookie: (k) => netnsCookieOf(k),
      foldInBackground: true, // as the daemon's: the folds' disk work off the main thread
    });
    journal.claimDaemon(); // as the daemon's is
    const j = journal;
    const encoder = new TextEncoder();
    // The daemon's own log shape (bpftune's lines, no fields), written with one write(2) each.
    const log = createLogger({
      target: "stderr",
      textFields: false,
      writer: (line) => void devNull.writeSync(encoder.encode(`${line}\n`)),
    });
    const applier = new ProposalApplier({
      journal: j,
      gate: new RateGate({ cooldownMs: 0 }),
      io: liveSysctls(undefined, files),
      log,
      stats: new DaemonStats(),
      advise: false,
      now: () => performance.now(),
      describe: () => "need to increase TCP buffer size(s)",
      onlyNetns: null,
      scopeOf: () => "netns",
    });
    const io = liveSysctls(undefined, files);
    const start = io.read(RMEM, key)!;
    let max = start[2];
    return {
      step() {
        const from = [start[0], start[1], max];
        max += 4096;
        const p: Proposal = {
          tuner: "tcp_buffer",
          scenario: "need to increase TCP buffer size(s)",
          sysctl: RMEM,
          netns: key,
          from,
          to: [start[0], start[1], max],
          reason: `Due to need to increase max buffer size to maximize throughput change ` +
            `net.ipv4.tcp_rmem(min default max) from (${from.join(" ")}) -> ` +
            `(${start[0]} ${start[1]} ${max})`,
          fresh: true,
        };
        const w0 = performance.now(), t0 = clock();
        const ok = j.batch(() => applier.deferWrites(() => applier.propose(p)));
        const threadUs = (clock() - t0) / 1e3, wallUs = (performance.now() - w0) * 1e3;
        if (!ok) throw new Error(`change to ${max} was not made`);
        return { threadUs, wallUs };
      },
      clock,
      folds: () => j.folds,
      async close() {
        let now: number[] | null = null;
        let closed;
        try {
          now = io.read(RMEM, key);
        } finally {
          closed = await close();
        }
        if (now?.[2] !== max) throw new Error(`tcp_rmem is ${now?.join(" ")}, not ..${max}`);
        return closed;
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** A turn of the event loop after `ms` (0: the next), as between the daemon's wake-ups. */
function turn(ms = 0): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs `changes` changes in a namespace of its own; everything it made is gone afterwards. */
export async function measureChangePath(changes: number): Promise<ChangePathResult> {
  const path = await openChangePath();
  let closed = false;
  try {
    const threadUs: number[] = [], wallUs: number[] = [], turnUs: number[] = [];
    changeTiming?.report(0); // the account starts here
    const began = performance.now();
    const folds = path.folds();
    for (let i = 0; i < changes; i++) {
      const s = path.step();
      threadUs.push(s.threadUs);
      wallUs.push(s.wallUs);
      const t0 = path.clock();
      await turn(); // a background fold's main-thread steps run here
      turnUs.push((path.clock() - t0) / 1e3);
    }
    const stages = changeTiming?.report((performance.now() - began) / 1000) ?? null;
    const pacedUs: number[] = [];
    for (let i = 0; i < PACED_CHANGES; i++) {
      await turn(PACED_GAP_MS); // asleep, as the daemon between wake-ups
      pacedUs.push(path.step().threadUs);
    }
    const foldsBegun = path.folds() - folds;
    closed = true;
    const { wallUs: closeWallUs, threadUs: closeThreadUs } = await path.close();
    return {
      changes,
      threadUs,
      wallUs,
      stages,
      pacedUs,
      turnUs,
      folds: foldsBegun,
      closeWallUs,
      closeThreadUs,
    };
  } finally {
    if (!closed) await path.close();
  }
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

const us = (x: number) => `${x.toFixed(0)} µs`;

/** The figures of one run: cold (first change, first 10) and warm (after the first 100). */
export function describeChangePath(
  r: ChangePathResult,
): { name: string; value: string; note: string }[] {
  const warm = r.threadUs.slice(Math.min(100, r.threadUs.length - 1));
  const warmWall = r.wallUs.slice(Math.min(100, r.wallUs.length - 1));
  return [
    {
      name: "change path: first change (cold)",
      value: us(r.threadUs[0]),
      note: `main-thread CPU; the next 9: mean ${us(mean(r.threadUs.slice(1, 10)))}; wall ` +
        `${us(r.wallUs[0])}`,
    },
    {
      name: "change path: one change, warm",
      value: us(median(warm)),
      note: `median main-thread CPU of changes 101-${r.changes} (p90 ${us(pct(warm, 0.9))}, mean ` +
        `${us(mean(warm))}, max ${us(Math.max(...warm))}); wall median ${us(median(warmWall))}; ` +
        `mean of all ${r.changes}: ${us(mean(r.threadUs))}`,
    },
    {
      name: "change path: one change, paced",
      value: us(median(r.pacedUs)),
      note: `median main-thread CPU of ${r.pacedUs.length} more changes ${PACED_GAP_MS} ms ` +
        `apart (the daemon's pace: compiled code, cold caches); p90 ${us(pct(r.pacedUs, 0.9))}, ` +
        `mean ${us(mean(r.pacedUs))}`,
    },
    {
      name: "change path: the turns between changes",
      value: us(Math.max(...r.turnUs)),
      note:
        `the longest: main-thread CPU of the event loop's turn after each back-to-back change ` +
        `(where a background fold's snapshot, renames and write slices run; ${r.folds} folds ` +
        `of the log begun); median ${us(median(r.turnUs))}, p99 ${us(pct(r.turnUs, 0.99))}, ` +
        `sum ${us(r.turnUs.reduce((a, b) => a + b, 0))}`,
    },
    {
      name: "change path: the journal's close (the daemon's stop)",
      value: us(r.closeWallUs),
      note: `closeInBackground: the last fold, its disk work in the blocking pool; main-thread ` +
        `CPU in it ${us(r.closeThreadUs)}`,
    },
  ];
}

/** Runs this file as its own process (a fresh V8: the first change is cold again). */
function runChild(root: string, deno: string, changes: number, timing: boolean): ChangePathResult {
  const out = spawnSync(
    deno,
    ["run", "-A", "--no-check", join(root, "scripts/bench/change_path.ts"), String(changes)],
    {
      encoding: "utf8",
      env: { ...Deno.env.toObject(), BPFPILOT_CHANGE_TIMING: timing ? "1" : "0" },
      timeout: 120_000,
    },
  );
  if (out.status !== 0) throw new Error(`change path bench failed: ${out.stderr.trim()}`);
  return JSON.parse(out.stdout);
}

export function changePathSection(root: string, deno: string, changes = 1000): void {
  section(`change path: ${changes} changes of tcp_rmem in a namespace of its own, one per batch`);
  try {
    for (const r of describeChangePath(runChild(root, deno, changes, false))) {
      row(r.name, r.value, r.note);
    }
    const timed = runChild(root, deno, changes, true);
    row("change path: stages (their own account)", "", timed.stages ?? "no account");
  } catch (e) {
    row("change path", "failed", (e as Error).message);
  }
}

if (import.meta.main) {
  const n = Number(Deno.args[0] ?? 1000);
  console.log(JSON.stringify(await measureChangePath(Number.isInteger(n) && n > 0 ? n : 1000)));
}
