/**
 * The benchmark's own child cgroup, `<cgroup2 root>/bpfp-bench-<pid>`: the daemons' cgroup
 * programs (`-c`) and the empty sockops floor attach there, never to the root cgroup, and every
 * workload runs in it from its first instruction (inCgroup), so sockops sees its connections.
 * Made on first use in a section and removed at the section's cleanup (or on Ctrl-C); members
 * still in it then are killed first: only processes the benchmark started are ever put there.
 */
import { cgroup2Root } from "../../src/kernel/cgroup.ts";
import { onCleanup } from "./cleanup.ts";
import { sleep } from "./report.ts";

let current: string | null = null;

/** The cgroup's directory, created (and its removal registered) on first use. */
export function benchCgroup(): string {
  if (current) return current;
  const root = cgroup2Root();
  if (!root) throw new Error("no cgroup v2 hierarchy is mounted (the bench's cgroup goes there)");
  const path = `${root}/bpfp-bench-${Deno.pid}`;
  Deno.mkdirSync(path, { recursive: true });
  current = path;
  onCleanup(`remove cgroup ${path}`, async () => {
    current = null;
    await removeCgroup(path);
  });
  return path;
}

/**
 * `argv` started inside the cgroup: a shell writes its own pid to cgroup.procs, then execs it,
 * so the workload (and whatever it forks) is a member before it opens a socket.
 */
export function inCgroup(argv: string[]): string[] {
  return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', benchCgroup(), ...argv];
}

async function removeCgroup(path: string): Promise<void> {
  const members = () => {
    try {
      return Deno.readTextFileSync(`${path}/cgroup.procs`).split("\n").filter(Boolean);
    } catch {
      return []; // gone already
    }
  };
  if (members().length) {
    try {
      Deno.writeTextFileSync(`${path}/cgroup.kill`, "1"); // 5.14+
    } catch {
      for (const pid of members()) {
        try {
          Deno.kill(Number(pid), "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
    }
  }
  for (let i = 0;; i++) {
    try {
      Deno.removeSync(path);
      return;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      if (i >= 50) throw new Error(`cgroup ${path} still busy after 5 s: ${(e as Error).message}`);
      await sleep(100); // killed members still exiting
    }
  }
}
