/** Every tuner's hook declarations, for `bpfpilot support` and the benchmark's probe. */
import { unavailableOnThisKernel } from "../tuning/tuner.ts";
import type { TunerHooks } from "../kernel/probe.ts";
import { TUNERS } from "./registry.ts";

/** Tuners that have nothing to do on this kernel, with the reason (they are not probed). */
export function unavailableTuners(): { tuner: string; reason: string }[] {
  return TUNERS.flatMap((t) => {
    const reason = unavailableOnThisKernel(t);
    return reason === null ? [] : [{ tuner: t.name, reason }];
  });
}

/** The hooks of every tuner that can work on this kernel. */
export function tunerHooks(): TunerHooks[] {
  const off = new Set(unavailableTuners().map((u) => u.tuner));
  return TUNERS.filter((t) => !off.has(t.name)).map((t) => ({
    tuner: t.name,
    hooks: t.hooks,
    object: t.object,
  }));
}

/** tunerHooks() as of start-up. */
export const TUNER_HOOKS: TunerHooks[] = tunerHooks();
