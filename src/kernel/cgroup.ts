/** Where the cgroup v2 hierarchy is (pure v2 at /sys/fs/cgroup, or hybrid at .../unified). */

export function parseCgroup2Mount(mounts: string): string | null {
  for (const line of mounts.split("\n")) {
    const f = line.split(" ");
    if (f[2] === "cgroup2") return f[1].replace(/\\040/g, " ");
  }
  return null;
}

export function cgroup2Root(): string | null {
  try {
    return parseCgroup2Mount(Deno.readTextFileSync("/proc/self/mounts"));
  } catch {
    return null;
  }
}

/**
 * The cgroup2 directory this process runs in, from /proc/self/cgroup's `0::<path>` line; null
 * for the root cgroup (never a place to attach a probe) or without a v2 line.
 */
export function ownCgroup(root: string, procSelfCgroup: string): string | null {
  const line = procSelfCgroup.split("\n").find((l) => l.startsWith("0::"));
  const path = line?.slice(3).trim();
  if (!path || path === "/" || path.split("/").includes("..")) return null;
  return `${root}${path}`;
}

/** A child cgroup this process created; removed by `remove()` (it must be empty by then). */
export function makeChildCgroup(root: string, name: string): { path: string; remove(): void } {
  const path = `${root}/${name}`;
  Deno.mkdirSync(path, { recursive: true });
  return {
    path,
    remove() {
      try {
        Deno.removeSync(path);
      } catch {
        // still populated or already gone: nothing else to do
      }
    },
  };
}

/** How old a dead process's probe cgroup must be before it is removed (a probe takes seconds). */
export const STALE_PROBE_CGROUP_MS = 5 * 60_000;

/**
 * Removes the probe cgroups (`<prefix><pid>` directly under `root`) that a killed bpfpilot left:
 * its process is gone and the directory is older than STALE_PROBE_CGROUP_MS (a live probe in
 * another PID namespace, whose pid we cannot see, is done long before). rmdir only: a cgroup
 * with processes or children stays; a program still attached goes with it. Returns the paths
 * removed.
 */
export function sweepStaleProbeCgroups(
  root: string,
  prefix: string,
  now = Date.now(),
  isAlive: (pid: number) => boolean = processAlive,
): string[] {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(root)];
  } catch {
    return removed;
  }
  for (const e of entries) {
    if (!e.isDirectory || !e.name.startsWith(prefix)) continue;
    const digits = e.name.slice(prefix.length);
    if (!/^[1-9][0-9]{0,9}$/.test(digits)) continue;
    const pid = Number(digits);
    if (pid === Deno.pid || isAlive(pid)) continue;
    const path = `${root}/${e.name}`;
    try {
      const st = Deno.lstatSync(path);
      const made = st.birthtime ?? st.mtime;
      if (!made || now - made.getTime() < STALE_PROBE_CGROUP_MS) continue;
      Deno.removeSync(path); // rmdir: fails, and stays, while populated
      removed.push(path);
    } catch {
      // populated, gone meanwhile, or not ours to remove
    }
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}
