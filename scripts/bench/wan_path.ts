/**
 * A WAN-like path between two benchmark namespaces joined by vethLink (a: receiver, b: sender),
 * without netem (this kernel has none): the data path (b's egress) limited to 100 Mbit/s by tbf,
 * and the ACK path (a's egress, 10 Mbit/s tbf) kept full by a UDP stream so every ACK waits
 * ~40 ms in its queue: a ~50 ms RTT. Plus iperf3 across it.
 */
import { type BenchNetns, tbf } from "./netns.ts";
import { sleep } from "./report.ts";

export interface IperfResult {
  mbps: number;
  /** Per-second throughput at the sender, Mbit/s. */
  intervals: number[];
  /** The sender's mean smoothed RTT, microseconds (0 when iperf3 does not report it). */
  rttUs: number;
  /** Segments the sender retransmitted. */
  retransmits: number;
}

/** Sets up the path; returns once the ACK queue is full. stop() ends the UDP stream. */
export async function wanPath(
  rx: BenchNetns,
  tx: BenchNetns,
  txAddr: string,
  udpPort: number,
): Promise<{ stop(): Promise<void> }> {
  tbf(tx, "bpfb1", "100mbit", "32kb", "20ms"); // data path, queue ≤ 20 ms
  tbf(rx, "bpfb0", "10mbit", "16kb", "40ms"); // ACK path, kept full below
  const udpServer = tx.spawn(["iperf3", "-s", "-p", `${udpPort}`]);
  await tx.waitListening(udpPort);
  const udpFlood = rx.spawn(
    ["iperf3", "-u", "-c", txAddr, "-p", `${udpPort}`, "-b", "10.5M", "-t", "900"],
  );
  await sleep(1000); // let the ACK-path queue fill
  return {
    async stop() {
      await udpFlood.stop();
      await udpServer.stop();
    },
  };
}

/** One iperf3 transfer from tx to rx with congestion control `cc`, for `seconds`. */
export async function iperf3(
  rx: BenchNetns,
  tx: BenchNetns,
  rxAddr: string,
  port: number,
  seconds: number,
  cc: string,
): Promise<IperfResult> {
  const server = rx.spawn(["iperf3", "-s", "-1", "-p", `${port}`]);
  await rx.waitListening(port);
  const client = tx.spawn(
    ["iperf3", "-c", rxAddr, "-p", `${port}`, "-t", `${seconds}`, "-C", cc, "-J"],
    { stdout: "piped" },
  );
  const out = await client.finished((seconds + 30) * 1000);
  await server.finished(10_000);
  if (out.code !== 0) throw new Error(`iperf3 failed: ${out.stdout.slice(0, 500)} ${out.stderr}`);
  const j = JSON.parse(out.stdout) as {
    end: {
      sum_received: { bits_per_second: number };
      sum_sent?: { retransmits?: number };
      streams?: { sender?: { mean_rtt?: number } }[];
    };
    intervals: { sum: { bits_per_second: number } }[];
  };
  return {
    mbps: j.end.sum_received.bits_per_second / 1e6,
    intervals: j.intervals.map((i) => i.sum.bits_per_second / 1e6),
    rttUs: j.end.streams?.[0]?.sender?.mean_rtt ?? 0,
    retransmits: j.end.sum_sent?.retransmits ?? 0,
  };
}
