/**
 * SIGTERM with a big journal: a state directory holding 10,000 journal records (written by the
 * daemon's own journal code: each an original and a completed write of tcp_rmem in a namespace
 * that is gone, as container churn leaves them), the daemon started on it, then SIGTERM: time to
 * the reaped exit. Once right after start, once after it ran a few seconds (pruning included).
 */
import { Journal } from "../../src/daemon/journal.ts";
import { BenchDaemon, daemonArgv } from "./daemon_process.ts";
import { BenchNetns } from "./netns.ts";
import { fmtMs, row, section, sleep, withTarget } from "./report.ts";
import { tempDir } from "./tempdir.ts";

const RECORDS = 10_000;
const RMEM = "net.ipv4.tcp_rmem";
const STARTED = /^(bpfpilot: )?bpfpilot started \(/;
/** Namespace inode numbers far above those the kernel hands out: namespaces that are gone. */
const GONE_INODE_BASE = 4_100_000_000;

function fillJournal(dir: string): void {
  const j = Journal.open(dir);
  for (let i = 0; i < RECORDS; i++) {
    const ns = `ns:${GONE_INODE_BASE + i}`;
    j.recordOriginal(ns, RMEM, "tcp_buffer", [4096, 131072, 6291456], [4096, 131072, 6291456 + i]);
    j.recordWritten(ns, RMEM, [4096, 131072, 6291456 + i]);
  }
  j.close();
}

async function sigtermAfter(argv: string[], args: string[], runMs: number) {
  const d = new BenchDaemon(argv, args);
  await d.waitFor(STARTED);
  if (runMs) await sleep(runMs);
  const r = await d.stop();
  if (r.code !== 0) {
    throw new Error(`daemon exited ${r.code}${r.signal ? ` (${r.signal})` : ""} on SIGTERM, not 0`);
  }
  const forgot = d.lines.map((l) => /forgot (\d+) journal record/.exec(l.text)?.[1]).find(Boolean);
  return { exitMs: r.exitMs, pruned: forgot ?? "none" };
}

export async function shutdownSection(root: string): Promise<void> {
  section(`daemon: SIGTERM with ${RECORDS.toLocaleString("en")} journal records`);
  const { argv, what } = daemonArgv(root);
  const ns = BenchNetns.create("term");
  const fresh = () => {
    const dir = tempDir("term");
    fillJournal(dir);
    return ["run", "--stderr", "--advise", "--netns", ns.name, "--state-dir", dir];
  };
  const how = `deno run ${what} run --advise --netns <own ns> -c <own cgroup> on a state dir ` +
    `of ${RECORDS} records (src/daemon/journal.ts); kill() to waitpid reaping it, exit status 0`;
  const early = await sigtermAfter(argv, fresh(), 0);
  row(
    "SIGTERM -> exit, right after start",
    fmtMs(early.exitMs),
    withTarget("≤ 300 ms", `${how}; records pruned before: ${early.pruned}`),
  );
  const later = await sigtermAfter(argv, fresh(), 3000);
  row(
    "SIGTERM -> exit, after 3 s running",
    fmtMs(later.exitMs),
    withTarget("≤ 300 ms", `the same; records pruned before: ${later.pruned}`),
  );
  await ns.delete();
}
