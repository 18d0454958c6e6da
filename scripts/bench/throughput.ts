/**
 * iperf3 over a constrained link, with and without the daemon. Two namespaces joined by a veth
 * pair: the data path is limited to 100 Mbit/s by tbf, and the ACK path (10 Mbit/s tbf) is kept
 * full by a UDP stream so every ACK waits ~40 ms in its queue: a ~50 ms RTT, since this kernel
 * has no netem to add delay directly. The receiving namespace starts with a deliberately low
 * tcp_rmem/tcp_wmem max (64 KiB, far below the ~600 KB bandwidth-delay product) and is the one
 * the daemon tunes (--netns). The daemon runs at its defaults during one long transfer. The sender uses cubic: BBR reads the jammed ACK path as a
 * bandwidth signal and swings wildly, which would hide the effect of the buffers.
 */
import { BenchDaemon, daemonArgv, type Line } from "./daemon_process.ts";
import { BenchNetns, vethLink } from "./netns.ts";
import { iperf3, type IperfResult, wanPath } from "./wan_path.ts";
import { readHookStats, statsDelta, tcpBufferStatsMap } from "./bpf_stats.ts";
import { fmtRate, judged, row, section, sleep, withTarget } from "./report.ts";
import { tempDir } from "./tempdir.ts";

const LOW_RMEM = "4096 65536 65536", LOW_WMEM = "4096 16384 65536";
/** The send-side case of issue 9: a 16 KiB tcp_wmem max at the sender. */
const TINY_WMEM = "4096 16384 16384";
/** Long enough for growth, STEADY_MS of quiet, the trim and TAIL_S of traffic after it. */
const WMEM_S = 30;
/** The send-side transfer's last seconds: the throughput the settled max gives. */
const TAIL_S = 10;
const KERNEL_RMEM = "4096 131072 6291456";
const DATA_PORT = 5201, UDP_PORT = 5202;
/** The path's need: the smallest of these multiples of the BDP (as a buffer max) at full rate. */
const NEED_LADDER = [1, 1.25, 1.6, 2, 2.5];
/** "Full rate" for the need: this share of the link capacity's throughput. */
const FULL_RATE = 0.95;
/** Seconds within which a transfer must reach 90 % of the tuned throughput. */
const TARGET_S = 10;
/** The change line itself (with --debug the scenario line quotes it too: not counted twice). */
const CHANGE = /^(?:bpfpilot: )?Due to .* change (\S+)\(.*\) from \(([^)]*)\) -> \(([^)]*)\)/;

export interface ThroughputOptions {
  iperfS: number;
  tuneS: number;
  settleS: number;
}

function mbit(bps: number): string {
  return `${bps.toFixed(1)} Mbit/s`;
}

export async function throughputSection(root: string, o: ThroughputOptions): Promise<void> {
  section(
    "iperf3 over veth: 100 Mbit/s tbf, ~50 ms RTT, receiver namespace starts at 64 KiB buffer max",
  );
  const rx = BenchNetns.create("rx"), tx = BenchNetns.create("tx");
  const { addrA: rxAddr, addrB: txAddr } = vethLink(rx, tx);
  const path = await wanPath(rx, tx, txAddr, UDP_PORT);

  /** The receiving sockets' largest sk_rcvbuf (ss -m "rb") while `run` lasts. */
  const peakRcvbuf = async <T>(run: Promise<T>): Promise<[T, number]> => {
    let peak = 0, done = false;
    const sampling = (async () => {
      while (!done) {
        const out = rx.exec(["ss", "-tmnH", "state", "established", "sport", `= :${DATA_PORT}`]);
        for (const m of out.matchAll(/\brb(\d+)/g)) peak = Math.max(peak, Number(m[1]));
        await sleep(500);
      }
    })();
    const result = await run;
    done = true;
    await sampling;
    return [result, peak];
  };

  const iperf = (seconds: number): Promise<IperfResult> =>
    iperf3(rx, tx, rxAddr, DATA_PORT, seconds, "cubic");

  rx.setSysctl("net.ipv4.tcp_rmem", KERNEL_RMEM);
  const [capacity, autoTuned] = await peakRcvbuf(iperf(o.iperfS));
  row(
    "link capacity (rmem max 6 MiB, no daemon)",
    mbit(capacity.mbps),
    `iperf3 -C cubic ${o.iperfS} s, receiver side; tcp_rmem='${KERNEL_RMEM}'; the receive ` +
      `buffer auto-tuning chose for it: ${(autoTuned / 1e6).toFixed(2)} MB`,
  );
  const bdp = capacity.mbps * 1e6 / 8 * capacity.rttUs / 1e6;
  const need = await pathNeed(bdp, capacity.mbps, (max) => {
    rx.setSysctl("net.ipv4.tcp_rmem", `4096 131072 ${max}`);
    return iperf(o.iperfS);
  });

  rx.setSysctl("net.ipv4.tcp_rmem", LOW_RMEM);
  rx.setSysctl("net.ipv4.tcp_wmem", LOW_WMEM);
  const low = await iperf(o.iperfS);
  row(
    "64 KiB buffer max, no daemon",
    mbit(low.mbps),
    `tcp_rmem='${LOW_RMEM}' tcp_wmem='${LOW_WMEM}' in the receiver namespace`,
  );

  const { argv } = daemonArgv(root);
  const logTo = Deno.env.get("BPFPILOT_BENCH_DAEMON_LOG");
  const d = new BenchDaemon(argv, [
    "run",
    "--stderr",
    ...(logTo ? ["--debug"] : []),
    "--rollback",
    "--netns",
    rx.name,
    "--state-dir",
    tempDir("iperf"),
  ]);
  await d.waitFor(/^(bpfpilot: )?bpfpilot started \(/);
  const statsMap = tcpBufferStatsMap(d.pid);
  const s0 = readHookStats(statsMap);
  // One long transfer from the low buffers, the daemon at its defaults: how soon the running
  // connection gets the throughput the tuned values give.
  const t0 = performance.now();
  const tuning = await iperf(o.tuneS);
  const t1 = performance.now();
  const events = statsDelta(s0, readHookStats(statsMap));
  const changes = d.matching(CHANGE, t0, t1);
  const tunedRmem = rx.sysctl("net.ipv4.tcp_rmem"), tunedWmem = rx.sysctl("net.ipv4.tcp_wmem");
  const stop = await d.stop();
  if (logTo) d.saveLog(logTo, t0);
  if (stop.code !== 0) throw new Error(`daemon exited ${stop.code} on SIGTERM`);
  const secs = (t1 - t0) / 1000;
  row(
    `while tuning (one ${o.tuneS} s transfer, daemon running)`,
    mbit(tuning.mbps),
    `per second: ${tuning.intervals.map((r) => r.toFixed(0)).join(" ")} Mbit/s; daemon run ` +
      `--netns <rx> --rollback, default cool-down; ` +
      `${fmtRate(events.hits / secs, "hits/s")} past the cheap tests, ` +
      `${fmtRate(events.emitted / secs, "events/s")} to userspace`,
  );
  printSettle(changes, t0, t1, o.settleS);
  maxVsNeedRow(
    "tcp_rmem",
    Number(tunedRmem.split(" ")[2]),
    need,
    bdp,
    `the BDP ${(bdp / 1e6).toFixed(2)} MB (capacity x mean RTT ` +
      `${(capacity.rttUs / 1000).toFixed(0)} ms of the capacity run)`,
  );

  // The daemon rolled its changes back on exit: set the tuned values by hand, and compare the
  // same values without a daemon and with one that observes and decides but changes nothing.
  rx.setSysctl("net.ipv4.tcp_rmem", tunedRmem);
  rx.setSysctl("net.ipv4.tcp_wmem", tunedWmem);
  const without = await iperf(o.iperfS);
  row(
    "tuned values, no daemon",
    mbit(without.mbps),
    `tcp_rmem='${tunedRmem}' tcp_wmem='${tunedWmem}' (where tuning left them) set by hand`,
  );
  const reachedS = tuning.intervals.findIndex((r) => r >= 0.9 * without.mbps);
  row(
    "time until the tuning transfer gets 90 % of the tuned throughput",
    reachedS < 0 ? `> ${tuning.intervals.length} s` : `${reachedS + 1} s`,
    judged(
      `≤ ${TARGET_S} s`,
      reachedS >= 0 && reachedS < TARGET_S,
      `first one-second interval of the transfer above at ≥ ` +
        `${(0.9 * without.mbps).toFixed(1)} Mbit/s (90 % of the tuned values without a daemon)`,
    ),
  );
  const observer = new BenchDaemon(argv, [
    "run",
    "--stderr",
    "--advise",
    "--netns",
    rx.name,
    "--state-dir",
    tempDir("iperf-advise"),
  ]);
  await observer.waitFor(/^(bpfpilot: )?bpfpilot started \(/);
  const observed = await iperf(o.iperfS);
  const proposals = observer.matching(CHANGE).length;
  const stopObserver = await observer.stop();
  if (stopObserver.code !== 0) throw new Error(`daemon exited ${stopObserver.code} on SIGTERM`);
  row(
    "tuned values, daemon --advise running",
    mbit(observed.mbps),
    withTarget(
      "no throughput loss vs no daemon",
      `same values; every hook, event and decision, no write (${proposals} proposals); ` +
        `${(observed.mbps / without.mbps * 100).toFixed(1)} % of no daemon`,
    ),
  );

  await sendBufferRow(root, tx, rx, { iperf, iperfS: o.iperfS, bdp, capacityMbps: capacity.mbps });

  await path.stop();
  await tx.delete();
  await rx.delete();
}

/**
 * The final max against the path's need: within 2x, and above the largest max tried that fell
 * short of full rate (at or below it the max cuts throughput).
 */
function maxVsNeedRow(
  what: string,
  finalMax: number,
  need: PathNeed,
  bdp: number,
  bdpNote: string,
): void {
  const ratio = need.max > 0 ? finalMax / need.max : Infinity;
  row(
    `final ${what} max vs the path's need`,
    `${ratio.toFixed(2)} x`,
    judged(
      "≤ 2 x, above what falls short",
      ratio <= 2 && finalMax > need.short,
      `final max ${(finalMax / 1e6).toFixed(2)} MB vs need ${(need.max / 1e6).toFixed(2)} MB ` +
        `(${need.how}); ${(finalMax / bdp).toFixed(2)} x ${bdpNote}`,
    ),
  );
}

interface PathNeed {
  /** The smallest max tried that gave full rate; 0: none did. */
  max: number;
  /** The largest max tried that fell short of it; 0: none did. */
  short: number;
  how: string;
}

/**
 * What the path needs: the smallest buffer max, going up NEED_LADDER's multiples of the BDP,
 * with which a fresh transfer gets FULL_RATE of the capacity (`run` sets the max and transfers).
 */
async function pathNeed(
  bdp: number,
  capacityMbps: number,
  run: (max: number) => Promise<IperfResult>,
): Promise<PathNeed> {
  const tried: string[] = [];
  let short = 0;
  for (const k of NEED_LADDER) {
    const max = Math.round(k * bdp);
    const r = await run(max);
    tried.push(`${(max / 1e6).toFixed(2)} MB: ${mbit(r.mbps)}`);
    if (r.mbps >= FULL_RATE * capacityMbps) {
      return {
        max,
        short,
        how: `the smallest max of ${NEED_LADDER.join(", ")} x BDP giving ≥ ${FULL_RATE * 100} % ` +
          `of capacity: ${tried.join(", ")}`,
      };
    }
    short = max;
  }
  return { max: 0, short, how: `none of ${tried.join(", ")} gave full rate` };
}

/**
 * The send side: the sender's namespace starts at a 16 KiB tcp_wmem max (the receiver's rmem at
 * the kernel's default), a daemon tunes the sender's namespace during one WMEM_S transfer
 * (bpftune's tcp_sndbuf_expand signal): how tcp_wmem max grows, where it settles against what the
 * path needs (measured as for tcp_rmem, as a tcp_wmem max), in how many changes, and the
 * throughput the settled max gives.
 */
async function sendBufferRow(
  root: string,
  tx: BenchNetns,
  rx: BenchNetns,
  path: {
    iperf: (seconds: number) => Promise<IperfResult>;
    iperfS: number;
    bdp: number;
    capacityMbps: number;
  },
): Promise<void> {
  const txWmem = tx.sysctl("net.ipv4.tcp_wmem");
  rx.setSysctl("net.ipv4.tcp_rmem", KERNEL_RMEM);
  const need = await pathNeed(path.bdp, path.capacityMbps, (max) => {
    tx.setSysctl("net.ipv4.tcp_wmem", `4096 16384 ${max}`);
    return path.iperf(path.iperfS);
  });
  tx.setSysctl("net.ipv4.tcp_wmem", TINY_WMEM);
  const logTo = Deno.env.get("BPFPILOT_BENCH_DAEMON_LOG");
  const d = new BenchDaemon(daemonArgv(root).argv, [
    "run",
    "--stderr",
    ...(logTo ? ["--debug"] : []),
    "--rollback",
    "--netns",
    tx.name,
    "--state-dir",
    tempDir("iperf-wmem"),
  ]);
  await d.waitFor(/^(bpfpilot: )?bpfpilot started \(/);
  const t0 = performance.now();
  const run = await path.iperf(WMEM_S);
  const t1 = performance.now();
  const finalWmem = tx.sysctl("net.ipv4.tcp_wmem");
  const stop = await d.stop();
  if (logTo) d.saveLog(`${logTo}.wmem`, t0);
  tx.setSysctl("net.ipv4.tcp_wmem", txWmem);
  if (stop.code !== 0) throw new Error(`daemon exited ${stop.code} on SIGTERM`);
  const changes = d.matching(CHANGE, t0, t1).map((l) => ({ at: l.at, m: l.text.match(CHANGE)! }))
    .filter((c) => c.m[1] === "net.ipv4.tcp_wmem");
  const maxOf = (v: string) => Number(v.split(/\s+/)[2]);
  const steps = changes.map((c) =>
    `${maxOf(c.m[3])} at ${((c.at - t0) / 1000).toFixed(1)} s` +
    (maxOf(c.m[3]) < maxOf(c.m[2]) ? " (trim)" : "")
  );
  const steady = changes.filter((c) => c.at - t0 > TARGET_S * 1000).length;
  row(
    `tcp_wmem max during one ${WMEM_S} s transfer from a 16 KiB max`,
    `${changes.length} changes`,
    withTarget(
      "grows in proportion, then settles (old daemon: 25,600 in two steps)",
      `${steady} after ${TARGET_S} s; ${steps.length ? steps.join(" -> ") : "unchanged"}; ` +
        `${mbit(run.mbps)}, per second ${run.intervals.map((r) => r.toFixed(0)).join(" ")}; ` +
        `sender namespace tcp_wmem='${TINY_WMEM}', daemon run --netns <tx> --rollback`,
    ),
  );
  maxVsNeedRow(
    "tcp_wmem",
    maxOf(finalWmem),
    need,
    path.bdp,
    "the BDP; the need as the sender's tcp_wmem max, the receiver at the kernel's rmem",
  );
  const tail = run.intervals.slice(-TAIL_S);
  const tailMbps = tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length);
  row(
    `send side: throughput in the last ${TAIL_S} s`,
    mbit(tailMbps),
    withTarget(
      "no loss from the trim",
      `${(tailMbps / path.capacityMbps * 100).toFixed(1)} % of the link capacity ` +
        `(${mbit(path.capacityMbps)})`,
    ),
  );
}

function printSettle(changes: Line[], t0: number, t1: number, settleS: number): void {
  const parsed = changes.map((l) => ({ at: l.at, m: l.text.match(CHANGE)! }));
  const rmem = parsed.filter((c) => c.m[1] === "net.ipv4.tcp_rmem");
  const span = rmem.length
    ? `tcp_rmem max ${rmem[0].m[2].split(" ")[2]} -> ${rmem.at(-1)!.m[3].split(" ")[2]}`
    : "tcp_rmem unchanged";
  const last = parsed.at(-1)?.at;
  const quietS = (t1 - (last ?? t0)) / 1000;
  const settled = quietS >= settleS;
  const value = last === undefined
    ? "no change"
    : settled
    ? `${((last - t0) / 1000).toFixed(1)} s`
    : `> ${((t1 - t0) / 1000).toFixed(0)} s`;
  row(
    "time until the tuned value settles",
    value,
    `from traffic start to the last change logged, settled = none for ${settleS} s after it` +
      `${settled ? "" : ` (not settled: last change ${quietS.toFixed(1)} s before the end)`}; ` +
      `${parsed.length} changes (${rmem.length} tcp_rmem), ${span}`,
  );
  const steady = parsed.filter((c) => c.at - t0 > TARGET_S * 1000).length;
  row(
    `changes under steady traffic (after ${TARGET_S} s)`,
    `${steady}`,
    withTarget(
      "no more than the old daemon (~20 tcp_rmem changes over 31 s, most after 10 s)",
      `changes logged from ${TARGET_S} s after the start to the end of the transfer`,
    ),
  );
}
