/**
 * iperf3 on a lossy WAN-like path: tcp_conn's choice there against cubic. tcp_conn switches a
 * connection that retransmits more than 1/64 of what it sends to bbr, and learns bbr for such a
 * path (test/integration/tcp_conn_test.ts shows it does on 2 % loss); here the two algorithms are
 * measured side by side on the throughput section's ~50 ms, 100 Mbit/s path with 2 % of the data
 * lost at the receiver's ingress (test/bpf/tc_loss.bpf.c: a drop at the sender's own egress would
 * be reported to TCP as local congestion and never retransmitted).
 */
import { join } from "node:path";
import { BenchNetns, vethLink } from "./netns.ts";
import { row, section } from "./report.ts";
import { iperf3, wanPath } from "./wan_path.ts";

const DATA_PORT = 5211, UDP_PORT = 5212;

export async function lossyPathSection(root: string, iperfS: number): Promise<void> {
  section("iperf3 on a 2 % loss path (100 Mbit/s tbf, ~50 ms RTT): tcp_conn's bbr vs cubic");
  const rx = BenchNetns.create("lrx"), tx = BenchNetns.create("ltx");
  const { addrA: rxAddr, addrB: txAddr } = vethLink(rx, tx);
  // One segment per packet: veth passes GSO packets whole, and one drop would lose dozens.
  tx.exec(["ip", "link", "set", "dev", "bpfb1", "gso_max_segs", "1", "gso_max_size", "1500"]);
  const path = await wanPath(rx, tx, txAddr, UDP_PORT);
  rx.exec(["tc", "qdisc", "add", "dev", "bpfb0", "clsact"]);
  rx.exec([
    ...["tc", "filter", "add", "dev", "bpfb0", "ingress", "bpf", "direct-action"],
    ...["obj", join(root, "dist/bpf/tc_loss.bpf.o"), "sec", "tc"],
  ]);
  const mbps: Record<string, number> = {};
  for (const cc of ["bbr", "cubic"]) {
    const r = await iperf3(rx, tx, rxAddr, DATA_PORT, iperfS, cc);
    mbps[cc] = r.mbps;
    row(
      `lossy path, ${cc}${cc === "bbr" ? " (tcp_conn's choice)" : ""}`,
      `${r.mbps.toFixed(1)} Mbit/s`,
      `iperf3 -C ${cc} ${iperfS} s; ${r.retransmits} segments retransmitted, mean RTT ` +
        `${(r.rttUs / 1000).toFixed(0)} ms`,
    );
  }
  row(
    "lossy path, bbr / cubic",
    `${(mbps.bbr / Math.max(mbps.cubic, 0.001)).toFixed(1)}x`,
    "what choosing bbr for a path with more than 1/64 retransmitted is worth here",
  );
  await path.stop();
}
