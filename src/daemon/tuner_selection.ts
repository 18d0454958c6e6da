/**
 * Which tuners a daemon runs: `--disable` and `-a` (bpftune's allow list) against the tuners
 * bpfpilot has, then what this kernel leaves each to do. A choice that leaves nothing to run is a
 * DaemonStartError that says how to fix it; a name bpfpilot lacks in `-a` is only a warning, as
 * bpftune loads the allowed tuners it has (a unit naming one still starts).
 */
import {
  type LogLike,
  type TunerDefinition,
  tunes,
  unavailableOnThisKernel,
} from "../tuning/tuner.ts";
import { DaemonStartError } from "./start_error.ts";
import type { UnavailableTuner } from "./tuner_loader.ts";

export interface TunerChoice {
  /** `--disable`: tuners switched off. */
  disable: readonly string[];
  /** `-a`: the only tuners to run (those always on besides); null: all. */
  allow: readonly string[] | null;
  /** Test switches (`<tuner>:available` loads a tuner that has nothing to do here). */
  faultInject: readonly string[];
}

export interface TunerSelection {
  /** Switched off by the choice. */
  disabled: string[];
  /** To load. */
  runnable: TunerDefinition[];
  /** Wanted, but with nothing to do on this kernel. */
  unavailable: UnavailableTuner[];
}

export function selectTuners(
  all: readonly TunerDefinition[],
  choice: TunerChoice,
  log: Pick<LogLike, "info" | "warn">,
  unavailableOn: (d: TunerDefinition) => string | null = unavailableOnThisKernel,
): TunerSelection {
  const disabled: string[] = [];
  const wanted = all.filter((d) => {
    const off = choice.disable.includes(d.name) ||
      (choice.allow !== null && !d.alwaysOn && !choice.allow.includes(d.name));
    if (off) disabled.push(d.name);
    return !off;
  });
  const known = all.map((d) => d.name).join(", ");
  for (const name of choice.disable) {
    if (!all.some((d) => d.name === name)) {
      throw new DaemonStartError(`unknown tuner '${name}'; known tuners: ${known}`);
    }
  }
  const allow = choice.allow ?? [];
  const unknown = allow.filter((name) => !all.some((d) => d.name === name));
  if (allow.length > 0 && unknown.length === allow.length) {
    throw new DaemonStartError(
      `none of the tuners given with -a (${unknown.join(", ")}) exists in bpfpilot; known ` +
        `tuners: ${known}`,
    );
  }
  for (const name of unknown) {
    log.warn(`-a ${name}: bpfpilot has no such tuner (known: ${known}); ignored`);
  }
  if (!wanted.some(tunes)) {
    throw new DaemonStartError(
      `every tuner that tunes is switched off (${disabled.join(", ")}): nothing to run; ` +
        "drop a --disable, or name the tuners to run with -a",
    );
  }
  if (choice.allow !== null) {
    for (const d of wanted.filter((d) => d.alwaysOn && !allow.includes(d.name))) {
      log.info(
        `tuner ${d.name} runs although -a did not name it: it notices the administrator's ` +
          `own sysctl writes so the other tuners back off (--disable ${d.name} turns it off)`,
      );
    }
  }

  const unavailable: UnavailableTuner[] = [];
  const runnable = wanted.filter((d) => {
    const reason = unavailableOn(d);
    if (reason === null) return true;
    if (choice.faultInject.includes(`${d.name}:available`)) {
      // test switch: exercise hooks, decisions and rollback where the tuner has nothing to do
      log.warn(
        `tuner ${d.name} loaded although it has nothing to do here (${reason}): ` +
          `BPFPILOT_FAULT_INJECT=${d.name}:available`,
      );
      return true;
    }
    unavailable.push({ def: d, reason, nothingToDo: true });
    log.info(`tuner ${d.name} is unavailable: ${reason}`, {
      event: "tuner_unavailable",
      tuner: d.name,
      reason,
    });
    return false;
  });
  return { disabled, runnable, unavailable };
}
