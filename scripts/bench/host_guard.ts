/**
 * The host outside the benchmark's own namespaces. The probe cache is removed for the cold-start
 * run and its original bytes put back afterwards. The host's value of every sysctl a tuner can
 * change (test/support/host_sysctls.ts) is snapshotted per section: the daemons the benchmark
 * runs either never write (--advise) or undo their own changes on exit (--rollback), so a value
 * that moved is a leak of the section's (or of a daemon it killed before the rollback): the
 * section fails naming it, and the snapshot is written back.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { onCleanup } from "./cleanup.ts";
import {
  changedSince,
  describeChanges,
  putBack,
  snapshotHostSysctls,
} from "../../test/support/host_sysctls.ts";

export const PROBE_CACHE = "/run/bpfpilot/probe-cache.json";

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

/**
 * Snapshots the host's tunables; the returned function puts back the ones that moved since and
 * says which (empty when none did).
 */
export function watchHostSysctls(): () => string | null {
  const saved = snapshotHostSysctls();
  return () => {
    const changes = changedSince(saved);
    if (!changes.length) return null;
    const failed = putBack(changes);
    return describeChanges(changes) +
      (failed.length ? `; could not put back: ${failed.join("; ")}` : " (put back)");
  };
}
