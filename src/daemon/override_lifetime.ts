/**
 * How long an administrator's write keeps bpfpilot off a sysctl. "persistent" (the default,
 * safer): until `bpfpilot enable`, across restarts. "session" (bpftune's): until the daemon
 * stops, so a restart resumes tuning; `disable` from the control socket is an explicit request
 * and is kept either way. At start the daemon says which remembered overrides are in force.
 */
import { describeNetns } from "../kernel/netns.ts";
import { isControlDisable } from "./control_overrides.ts";
import type { Journal, OverrideRecord } from "./journal.ts";
import type { LogLike } from "../tuning/tuner.ts";

export const OVERRIDE_LIFETIMES = ["persistent", "session"] as const;
export type OverrideLifetime = typeof OVERRIDE_LIFETIMES[number];

/** One start-up line for a remembered override. */
export function describeRemembered(o: OverrideRecord): string {
  if (isControlDisable(o)) {
    return `not tuning ${o.sysctl} (${o.tuner}) since ${o.at}: switched off with 'disable'; ` +
      `'bpfpilot enable ${o.sysctl}' to resume`;
  }
  return `not tuning ${o.sysctl} in ${describeNetns(o.netns)} since ${o.at}: admin write by ` +
    `${o.comm || "an unknown process"}${o.pid ? ` (pid ${o.pid})` : ""}; ` +
    `'bpfpilot enable ${o.sysctl}' to resume`;
}

/** Applies the lifetime at start: forgets earlier admin writes in session mode, then reports. */
export function applyOverrideLifetime(
  journal: Journal,
  lifetime: OverrideLifetime,
  log: LogLike,
): void {
  if (lifetime === "session") {
    const n = journal.dropOverrides((o) => !isControlDisable(o));
    if (n > 0) {
      log.info(
        `forgot ${n} admin override(s) from an earlier run (--overrides session: an admin ` +
          "write holds bpfpilot off only until it stops)",
      );
    }
  }
  for (const o of journal.overrides()) {
    log.notice(describeRemembered(o), {
      event: "override_in_force",
      sysctl: o.sysctl,
      netns: o.netns,
      tuner: o.tuner,
    });
  }
}
