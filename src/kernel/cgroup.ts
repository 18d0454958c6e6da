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
