/**
 * The host outside the benchmark's own namespaces. The probe cache is removed for the cold-start
 * run and its original bytes put back afterwards. Host-wide sysctls (tcp_mem and friends, which
 * the tcp_buffer tuner manages even with --netns) are only watched, never written: the daemons
 * the benchmark runs either never write (--advise) or undo their own changes on exit
 * (--rollback), and writing back a snapshot would clobber whatever a concurrent test or admin
 * did in the meantime.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { onCleanup } from "./cleanup.ts";

export const PROBE_CACHE = "/run/bpfpilot/probe-cache.json";

const HOST_WIDE = [
  "net.ipv4.tcp_mem",
  "net.core.high_order_alloc_disable",
  "net.ipv4.tcp_max_orphans",
];

/** Removes the probe cache now; the original bytes (or its absence) come back at cleanup. */
export function removeProbeCache(): void {
  let saved: Uint8Array | null = null;
  try {
    saved = readFileSync(PROBE_CACHE);
  } catch {
    // none yet
  }
  onCleanup("restore probe cache", () => {
    if (saved) writeFileSync(PROBE_CACHE, saved, { mode: 0o644 });
    else rmSync(PROBE_CACHE, { force: true });
  });
  rmSync(PROBE_CACHE, { force: true });
}

function read(name: string): string | null {
  try {
    return execFileSync("sysctl", ["-n", name], { encoding: "utf8" }).trim().split(/\s+/).join(
      " ",
    );
  } catch {
    return null;
  }
}

/** Snapshots the host-wide tunables; the returned function says which ones moved since. */
export function watchHostSysctls(): () => string[] {
  const saved = HOST_WIDE.map((n) => [n, read(n)] as const);
  return () =>
    saved.flatMap(([name, was]) => {
      const now = read(name);
      return now === was ? [] : [`${name} '${was}' -> '${now}'`];
    });
}
