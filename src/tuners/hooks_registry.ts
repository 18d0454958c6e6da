/** Every tuner's hook declarations, for `bpfpilot support` and the benchmark's probe. */
import type { TunerHooks } from "../kernel/probe.ts";
import { TUNERS } from "./registry.ts";

export const TUNER_HOOKS: TunerHooks[] = TUNERS.map((t) => ({
  tuner: t.name,
  hooks: t.hooks,
  object: t.object,
}));
