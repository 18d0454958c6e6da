/**
 * The net_buffer tuner for real: a UDP flood over a veth pair from a namespace of the test's own
 * into the sandbox's namespace, with RPS steering every packet to another CPU's input backlog
 * (the sender is pinned to CPU 0, the backlog is the last CPU's), and the host's
 * netdev_max_backlog set to 4 for the test (it is host-wide: init_net only) and put back after.
 * The kernel drops with reason CPU_BACKLOG; the tuner sees them through skb:kfree_skb, grows the
 * backlog and turns the flow limit on for the CPU whose backlog was full, written as the kernel's
 * hex mask; the drop rate falls. high_order_alloc_disable=1 is reset at start (>= 5.14). -R puts
 * every value back.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import { TestNetns, withHostSysctls } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import { HAVE_PYTHON, udpBlast } from "../support/udp_flood.ts";
import { readSoftnetStat } from "../../src/kernel/proc/softnet.ts";
import { cpuInMask, cpuMaskOf, formatCpuMask, parseCpuMask } from "../../src/kernel/cpumask.ts";
import { NB_SYSCTL } from "../../src/tuners/net_buffer_rules.ts";

const HOST = Object.values(NB_SYSCTL);
const CPUS = navigator.hardwareConcurrency;
const LOW_BACKLOG = 4;
const ROUNDS = 8;

function host(name: string): string {
  return execFileSync("sysctl", ["-n", name], { encoding: "utf8" }).trim();
}

function setHost(name: string, value: string | number): void {
  execFileSync("sysctl", ["-qw", `${name}=${value}`]);
}

/** Packets dropped at CPU `cpu`'s full backlog so far (softnet_stat column 2). */
function droppedOn(cpu: number): number {
  return readSoftnetStat()?.find((r) => r.cpu === cpu)?.dropped ?? 0;
}

Deno.test({
  name: "net_buffer: backlog drops (reason CPU_BACKLOG) grow netdev_max_backlog, drops fall, " +
    "the flow limit is set in hex for that CPU, -R restores",
  ignore: !IS_ROOT || !HAVE_PYTHON || CPUS < 2,
  async fn() {
    await withHostSysctls(HOST, () =>
      withSandbox("nbuf", async (sb) => {
        const peer = TestNetns.create("nbufp");
        try {
          const [a, b] = [`nbfa${Deno.pid % 100000}`, `nbfb${Deno.pid % 100000}`];
          execFileSync("ip", [
            ...["link", "add", a, "netns", peer.name, "type", "veth"],
            ...["peer", "name", b, "netns", sb.ns.name],
          ]);
          peer.exec(["ip", "addr", "add", "10.78.0.1/24", "dev", a]);
          peer.exec(["ip", "link", "set", a, "up"]);
          sb.ns.exec(["ip", "addr", "add", "10.78.0.2/24", "dev", b]);
          sb.ns.exec(["ip", "link", "set", b, "up"]);
          // Every packet to the last CPU's backlog (the sender runs on CPU 0).
          const target = CPUS - 1;
          const rps = formatCpuMask(cpuMaskOf([target], Math.ceil(CPUS / 32))!);
          sb.ns.exec(["sh", "-c", `echo ${rps} > /sys/class/net/${b}/queues/rx-0/rps_cpus`]);

          const flowLimitBefore = parseCpuMask(host(NB_SYSCTL.flowLimit))!;
          setHost(NB_SYSCTL.flowLimit, formatCpuMask(flowLimitBefore.map(() => 0)));
          setHost(NB_SYSCTL.maxBacklog, LOW_BACKLOG);
          setHost(NB_SYSCTL.highOrderAllocDisable, 1);
          const daemon = sb.start(["--allow", "net_buffer_tuner.so", "-R"]);
          await daemon.waitFor(/bpfpilot started/);
          assert.equal(host(NB_SYSCTL.highOrderAllocDisable), "0", "reset at start on >= 5.14");

          const rounds: { sent: number; dropped: number; backlog: number }[] = [];
          for (let i = 0; i < ROUNDS; i++) {
            const before = droppedOn(target);
            const sent = udpBlast(peer, { dst: "10.78.0.2", seconds: 1, cpu: 0 });
            rounds.push({
              sent,
              dropped: droppedOn(target) - before,
              backlog: Number(host(NB_SYSCTL.maxBacklog)),
            });
            await new Promise((r) => setTimeout(r, 300));
          }
          const show = JSON.stringify(rounds);
          console.log(`net_buffer rounds (sent, dropped, backlog after): ${show}`);
          await daemon.waitFor(
            /Due to excessive drops, change net\.core\.netdev_max_backlog from \(4\) -> \(\d+\)/,
          );
          const [first, last] = [rounds[0], rounds.at(-1)!];
          assert.ok(first.dropped > 0, `the low backlog dropped packets: ${show}`);
          assert.ok(last.backlog > LOW_BACKLOG, `the backlog grew: ${show}`);
          assert.ok(
            last.dropped / last.sent < first.dropped / first.sent / 2,
            `the drop rate fell by more than half: ${show}`,
          );
          // The flow limit: on for the CPU whose backlog was full, in the kernel's hex form.
          const mask = parseCpuMask(host(NB_SYSCTL.flowLimit));
          assert.ok(mask && cpuInMask(mask, target), `flow limit for CPU ${target}: ${mask}`);
          assert.ok(
            daemon.matching(/To prioritize small flows, change net\.core\.flow_limit_cpu_bitmap/)
              .length >= 1,
          );

          assert.equal(await daemon.stop("SIGTERM"), 0);
          // Seen by the hook, not a poll: the drops were counted and no poll was needed.
          assert.ok(daemon.matching(/# net_buffer: [1-9]\d* backlog drops/).length === 1);
          assert.deepEqual(daemon.matching(/polls of \/proc\/net\/softnet_stat/), []);
          assert.ok(
            daemon.matching(/# Summary: scenario 'need to increase max backlog size'/).length >= 1,
          );
          // -R: every value the tuner changed is back.
          assert.equal(host(NB_SYSCTL.maxBacklog), String(LOW_BACKLOG));
          assert.equal(host(NB_SYSCTL.highOrderAllocDisable), "1");
          assert.ok(!cpuInMask(parseCpuMask(host(NB_SYSCTL.flowLimit))!, target));
        } finally {
          peer.delete();
        }
      }));
  },
});
