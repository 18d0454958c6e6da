/**
 * The one integration sandbox: a network namespace, a child cgroup and a state directory of the
 * test's own, and daemons started in them (isolated: `--netns`, `-c`, `--state-dir`). Whatever
 * the body does, every daemon is killed and the namespace, cgroup and directory are removed; the
 * host-wide tunables its daemons changed (--netns still tunes those) are put back.
 */
import { DaemonProcess, isolatedRunArgs, tempStateDir, TestCgroup, TestNetns } from "./daemon.ts";
import { hostWideRestorer } from "./host_sysctls.ts";

export interface Sandbox {
  ns: TestNetns;
  cg: TestCgroup;
  /** The state directory. */
  state: string;
  /** Daemons started here (stopped with SIGKILL at the end if still running). */
  daemons: DaemonProcess[];
  /** `bpfpilot run` confined to this sandbox, plus `extra` arguments. */
  args(extra?: string[]): string[];
  /** Starts a confined daemon; add `env` (e.g. BPFPILOT_FAULT_INJECT). */
  start(extra?: string[], env?: Record<string, string>): DaemonProcess;
}

export async function withSandbox(tag: string, body: (sb: Sandbox) => Promise<void>) {
  const restoreHostWide = hostWideRestorer();
  const ns = TestNetns.create(tag);
  const cg = TestCgroup.create(tag);
  const state = tempStateDir();
  const daemons: DaemonProcess[] = [];
  const args = (extra: string[] = []) => isolatedRunArgs(ns, state.dir, cg, extra);
  try {
    await body({
      ns,
      cg,
      state: state.dir,
      daemons,
      args,
      start(extra = [], env = {}) {
        const d = DaemonProcess.start(args(extra), env);
        daemons.push(d);
        return d;
      },
    });
  } finally {
    for (const d of daemons) await d.stop("SIGKILL").catch(() => {});
    ns.delete();
    cg.remove();
    state.remove();
    restoreHostWide();
  }
}
