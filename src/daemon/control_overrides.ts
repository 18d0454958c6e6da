/**
 * Overrides recorded by `disable` on the control socket. They are ordinary journal overrides
 * (so `bpfpilot enable` and `query enable` clear them, and they survive restarts) with a
 * recognisable writer, and unlike an admin's write, which concerns one network namespace, they
 * switch a sysctl off in every namespace: the user asked for the tunable, not for one namespace.
 */
import type { Journal, OverrideRecord } from "./journal.ts";
import { ANY_NETNS } from "../kernel/netns.ts";

/** The `comm` of overrides written by `disable`; pid 0 marks them as not from a process. */
export const DISABLE_COMM = "bpfpilot disable";

export function isControlDisable(o: Pick<OverrideRecord, "pid" | "comm">): boolean {
  return o.pid === 0 && o.comm === DISABLE_COMM;
}

/** True when `disable` switched `sysctl` off (for any tuner); the daemon then never proposes it. */
export function disabledByControl(journal: Journal, sysctl: string): boolean {
  return journal.overrides().some((o) => o.sysctl === sysctl && isControlDisable(o));
}

/** Records the `disable` of one sysctl of one tuner; returns false if it already was. */
export function recordDisable(journal: Journal, tuner: string, sysctl: string): boolean {
  const already = journal.overrides().some((o) =>
    o.sysctl === sysctl && o.tuner === tuner && isControlDisable(o)
  );
  if (already) return false;
  // Recorded for every namespace (ANY_NETNS), which the proposal pipeline honours everywhere.
  journal.markOverride({ netns: ANY_NETNS, sysctl, tuner, pid: 0, comm: DISABLE_COMM });
  return true;
}
