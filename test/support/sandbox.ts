/**
 * The one confined environment for integration tests: a network namespace, a child cgroup and a
 * state directory of the test's own, daemons started in them (isolated: `--netns`, `-c`,
 * `--state-dir`), and any further namespaces or state directories the test asks for. Whatever
 * the body does, every daemon started here is killed, the host-wide tunables changed meanwhile
 * are put back (a daemon confined with --netns still tunes those: net_buffer grew the host's
 * netdev_budget 300 -> 375 under a veth's traffic), and every namespace, cgroup and directory is
 * removed. A test that starts a daemon, or runs bpfpilot on namespaces, goes through here so that
 * it cannot forget one of these.
 */
import {
  DaemonProcess,
  isolatedRunArgs,
  LAUNCHER,
  tempStateDir,
  TestCgroup,
  TestNetns,
} from "./daemon.ts";
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
  /** Starts `bpfpilot <argv>` as given (the test confines it), killed at the end as well. */
  spawn(argv: string[], env?: Record<string, string>): DaemonProcess;
  /**
   * Starts `command <args>`, a wrapper that ends by exec'ing the daemon (nsenter, unshare, sh -c
   * '... exec', another Deno), so its pid is the daemon's; the test confines it. Killed at the end.
   */
  spawnVia(command: string, args: string[], env?: Record<string, string>): DaemonProcess;
  /** Another namespace (`bpfp-t-<tag>-<pid>`: tags must differ), deleted at the end. */
  netns(tag: string): TestNetns;
  /** Another state directory, removed at the end. */
  stateDir(): string;
}

export async function withSandbox(
  tag: string,
  body: (sb: Sandbox) => void | Promise<void>,
): Promise<void> {
  const restoreHostWide = hostWideRestorer();
  const ns = TestNetns.create(tag);
  const namespaces = [ns];
  let cg: TestCgroup, state: ReturnType<typeof tempStateDir>;
  try {
    cg = TestCgroup.create(tag);
    try {
      state = tempStateDir();
    } catch (e) {
      cg.remove();
      throw e;
    }
  } catch (e) {
    ns.delete(); // a half-made sandbox leaves nothing behind either
    throw e;
  }
  const states = [state];
  const daemons: DaemonProcess[] = [];
  const args = (extra: string[] = []) => isolatedRunArgs(ns, state.dir, cg, extra);
  const spawnVia = (command: string, argv: string[], env: Record<string, string> = {}) => {
    const d = DaemonProcess.startVia(command, argv, env);
    daemons.push(d);
    return d;
  };
  const spawn = (argv: string[], env: Record<string, string> = {}) => spawnVia(LAUNCHER, argv, env);
  let unrestored: string[] = [];
  let ok = false;
  try {
    await body({
      ns,
      cg,
      state: state.dir,
      daemons,
      args,
      start: (extra = [], env = {}) => spawn(args(extra), env),
      spawn,
      spawnVia,
      netns(more) {
        const n = TestNetns.create(more);
        namespaces.push(n);
        return n;
      },
      stateDir() {
        const s = tempStateDir();
        states.push(s);
        return s.dir;
      },
    });
    ok = true;
  } finally {
    // One the test stopped already: a no-op (its exit status is kept; no pid is signalled again).
    for (const d of daemons) await d.stop("SIGKILL").catch(() => {});
    // Before the namespaces go: nothing of ours can write the host's values any more.
    unrestored = restoreHostWide();
    // Each removal on its own: one that throws must not leave the others behind.
    const removals = [
      ...namespaces.map((n) => () => n.delete()),
      () => cg.remove(),
      ...states.map((s) => () => s.remove()),
    ];
    for (const remove of removals) {
      try {
        remove();
      } catch (e) {
        unrestored.push(`clean-up: ${e instanceof Error ? e.message : e}`);
      }
    }
  }
  // The body's own failure comes first; this one only when the body passed.
  if (ok && unrestored.length) {
    throw new Error(`sandbox not left as found: ${unrestored.join("; ")}`);
  }
}
