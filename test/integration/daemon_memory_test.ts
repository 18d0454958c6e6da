/**
 * The TCP memory path for real: with a tiny host tcp_mem, parallel iperf3 streams push TCP's
 * allocated pages near the pressure and exhaustion marks; the daemon grows tcp_mem, never past a
 * quarter of the free-buffer pages. tcp_mem is host-wide, so this test changes the host for a few
 * seconds and restores every sysctl it or the daemon may touch.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import { withHostSysctls } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import { readFreeBufferPages } from "../../src/kernel/proc/zoneinfo.ts";

const TOUCHED = [
  "net.ipv4.tcp_mem",
  "net.ipv4.tcp_no_metrics_save",
  "net.ipv4.tcp_no_ssthresh_metrics_save",
  "net.core.high_order_alloc_disable",
  "net.ipv4.tcp_max_syn_backlog",
  "net.ipv4.tcp_rmem",
  "net.ipv4.tcp_wmem",
];

function hostTcpMem(): number[] {
  return execFileSync("sysctl", ["-n", "net.ipv4.tcp_mem"], { encoding: "utf8" }).trim()
    .split(/\s+/).map(Number);
}

Deno.test({
  name: "tiny tcp_mem + parallel streams: the pressure path grows tcp_mem, bounded by nfbp/4",
  ignore: !IS_ROOT,
  async fn() {
    await withHostSysctls(TOUCHED, () =>
      withSandbox("mem", async ({ ns, start }) => {
        const tiny = [1500, 2000, 3000];
        execFileSync("sysctl", ["-qw", `net.ipv4.tcp_mem=${tiny.join(" ")}`]);
        const d = start();
        await d.waitFor(/bpfpilot started/);
        ns.iperf(6, ["-P", "8"]);
        await d.waitFor(
          /Due to near memory (pressure|exhaustion) change net\.ipv4\.tcp_mem\(min pressure max\)/,
        );
        assert.equal(await d.stop(), 0);
        const now = hostTcpMem();
        assert.ok(now[2] > tiny[2], `tcp_mem max grew: ${now}`);
        assert.ok(now[0] <= now[1] && now[1] <= now[2], "min <= pressure <= max");
        assert.ok(now[2] <= Math.floor(readFreeBufferPages() / 4), "never past nfbp/4");
        const scen = d.matching(
          /Scenario 'approaching TCP memory (pressure|exhaustion)' occurred for tunable 'net\.ipv4\.tcp_mem' in global ns/,
        );
        assert.ok(scen.length >= 1);
        const due = d.matching(/change net\.ipv4\.tcp_mem/);
        assert.equal(scen.length, due.length);
        assert.equal(new Set(due).size, due.length, "no change logged twice");
      }));
  },
});
