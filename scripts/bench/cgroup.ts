/**
 * The benchmark's own child cgroup, `<cgroup2 root>/bpfp-bench-<pid>`: the daemons' cgroup
 * programs (`-c`) and the empty sockops floor attach there, never to the root cgroup, and every
 * workload runs in it from its first instruction (inCgroup), so sockops sees its connections.
 * Made on first use in a section and removed at the section's cleanup (or on Ctrl-C); members
 * still in it then are killed first: only processes the benchmark started are ever put there.
 */
import { ChildCgroup } from "../../test/support/child_cgroup.ts";
import { onCleanup } from "./cleanup.ts";

let current: ChildCgroup | null = null;

function cgroup(): ChildCgroup {
  if (current) return current;
  const cg = new ChildCgroup(`bpfp-bench-${Deno.pid}`);
  current = cg;
  onCleanup(`remove cgroup ${cg.path}`, async () => {
    current = null;
    cg.killMembers();
    await cg.removeAsync();
  });
  return cg;
}

/** The cgroup's directory, created (and its removal registered) on first use. */
export function benchCgroup(): string {
  return cgroup().path;
}

/**
 * `argv` started inside the cgroup (a shell joins it, then execs), so the workload (and whatever
 * it forks) is a member before it opens a socket.
 */
export function inCgroup(argv: string[]): string[] {
  return cgroup().wrap(argv);
}
