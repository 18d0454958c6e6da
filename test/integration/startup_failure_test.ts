/**
 * Resource lifetimes: start-up is made to fail after each of its steps (BPFPILOT_FAULT_INJECT
 * `start:<step>`) in this very process, and afterwards nothing of it stays open in
 * /proc/self/fd (BPF objects, links, maps, the ring buffer's epoll and eventfd, the state
 * directory's lock, the control socket) or loaded in the kernel (bpftool: programs, links, maps).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import { withSandbox } from "../support/sandbox.ts";
import { Daemon, DaemonStartError, START_STEPS } from "../../src/daemon/daemon.ts";
import { createLogger } from "../../src/log/logger.ts";
import { netnsInumOf, netnsKey } from "../../src/kernel/netns.ts";
import { TUNERS } from "../../src/tuners/registry.ts";

/** Our fds that matter: anything BPF, epoll, eventfd, socket, or under the state directory. */
function ownFds(state: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      const target = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
      if (/bpf|eventpoll|eventfd|socket:/.test(target) || target.startsWith(state)) {
        out.set(e.name, target);
      }
    } catch {
      // the directory handle itself, closed meanwhile
    }
  }
  return out;
}

/** bpfpilot's programs, links and maps in the kernel (names start with bpfp_). */
function kernelObjects(): string[] {
  const list = (what: string) => {
    const out = execFileSync("bpftool", [what, "show", "--json"], { encoding: "utf8" });
    return (JSON.parse(out) as { id: number; name?: string; prog_id?: number }[])
      .filter((x) => what === "link" || x.name?.startsWith("bpfp_"))
      .map((x) => `${what}:${x.id}`);
  };
  return [...list("prog"), ...list("link"), ...list("map")].sort();
}

for (const step of START_STEPS) {
  Deno.test({
    name: `start-up failing after '${step}' leaves nothing loaded or open`,
    ignore: !IS_ROOT,
    async fn() {
      await withSandbox("sf", async (sb) => {
        const fdsBefore = ownFds(sb.state);
        const kernelBefore = kernelObjects();
        const lines: string[] = [];
        const daemon = new Daemon({
          log: createLogger({
            target: "stderr",
            format: "text",
            debug: false,
            textFields: false,
            syslog: null,
            writer: (l) => void lines.push(l),
          }),
          tuners: TUNERS,
          advise: true,
          learningRate: 4,
          rollbackOnExit: false,
          allow: null,
          disable: [],
          cgroup: sb.cg.path,
          legacy: false,
          stateDir: sb.state,
          probeCache: null,
          faultInject: [`start:${step}`],
          onlyNetns: netnsKey(netnsInumOf(`/run/netns/${sb.ns.name}`)),
          controlSocket: `${sb.state}/control.sock`,
          metricsListen: "127.0.0.1:0",
        });
        await assert.rejects(
          daemon.run(),
          (e) => e instanceof DaemonStartError && e.message.includes(`'${step}'`),
        );
        assert.deepEqual(ownFds(sb.state), fdsBefore, `fds left open after '${step}'`);
        // The kernel frees a program shortly after its last fd closes (RCU): give it a moment.
        await waitFor(() => kernelObjects().join() === kernelBefore.join(), 3000, 50);
        assert.deepEqual(kernelObjects(), kernelBefore, `kernel objects left after '${step}'`);
        if (step !== "journal") {
          assert.ok(lines.some((l) => /tuner tcp_buffer: advising/.test(l)) || step === "probe");
        }
      });
    },
  });
}
