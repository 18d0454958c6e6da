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
