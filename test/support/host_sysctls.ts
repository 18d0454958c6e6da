/**
 * The host's own values of every sysctl a bpfpilot tuner can change: snapshot, compare, put back.
 * Tests and the benchmark run daemons in namespaces of their own, but some tunables are
 * host-wide (net_buffer's are init_net only, tcp_mem, udp_mem, rmem_max, ...): a daemon that
 * is killed, or runs without -R, leaves them changed on the host. The list is every tuner's
 * declared tunables (so a new tuner is watched without an edit here) plus the few host sysctls
 * tests set directly.
 */
import { TUNERS } from "../../src/tuners/registry.ts";
import { readSysctlText, writeSysctlText } from "../../src/kernel/sysctl.ts";

/** Host sysctls no tuner declares but tests or daemons touch (tcp_conn, wmem tests). */
const ALSO_WATCHED = [
  "net.ipv4.tcp_congestion_control",
  "net.core.wmem_max",
  "net.core.wmem_default",
];

/** Every tuner's tunables and ALSO_WATCHED, each once. */
export function watchedHostSysctls(): string[] {
  const names = TUNERS.flatMap((t) => t.tunables.map((d) => d.sysctl));
  return [...new Set([...names, ...ALSO_WATCHED])];
}

/**
 * The host-wide tunables (scope "global"): a daemon confined with --netns still tunes those (as
 * documented; net_buffer grows netdev_budget when the veth's NAPI polls run out of budget).
 */
export function hostWideSysctls(): string[] {
  const names = TUNERS.flatMap((t) => t.tunables.filter((d) => d.scope === "global"));
  return [...new Set(names.map((d) => d.sysctl))];
}

/** name -> the host's value as text (fields joined by one space); absent sysctls are left out. */
export type HostSysctlSnapshot = Map<string, string>;

function readText(name: string): string | null {
  try {
    return readSysctlText(name).split(/\s+/).join(" ");
  } catch {
    return null; // not on this kernel (optional tunables)
  }
}

export function snapshotHostSysctls(names = watchedHostSysctls()): HostSysctlSnapshot {
  const snap: HostSysctlSnapshot = new Map();
  for (const n of names) {
    const v = readText(n);
    if (v !== null) snap.set(n, v);
  }
  return snap;
}

export interface HostSysctlChange {
  name: string;
  was: string;
  now: string | null;
}

/** The watched sysctls whose value differs from `snap` now. */
export function changedSince(snap: HostSysctlSnapshot): HostSysctlChange[] {
  const out: HostSysctlChange[] = [];
  for (const [name, was] of snap) {
    const now = readText(name);
    if (now !== was) out.push({ name, was, now });
  }
  return out;
}

/** Writes each change's old value back; returns the ones that could not be (with why). */
export function putBack(changes: readonly HostSysctlChange[]): string[] {
  const failed: string[] = [];
  for (const c of changes) {
    try {
      writeSysctlText(c.name, c.was);
    } catch (e) {
      failed.push(`${c.name}: ${(e as Error).message}`);
    }
  }
  return failed;
}

export function describeChanges(changes: readonly HostSysctlChange[]): string {
  return changes.map((c) => `${c.name} '${c.was}' -> '${c.now ?? "(unreadable)"}'`).join(", ");
}

/**
 * Snapshots the host-wide tunables now; the returned function puts back any a test's confined
 * daemon changed since (withSandbox calls it once its daemons are gone) and returns the ones it
 * could not put back, with why.
 */
export function hostWideRestorer(): () => string[] {
  const snap = snapshotHostSysctls(hostWideSysctls());
  return () => putBack(changedSince(snap));
}
