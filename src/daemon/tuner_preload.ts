/**
 * Start-up loads the tuners' BPF objects side by side on worker threads, a few at a time: libbpf
 * parses the kernel's BTF for every object (tens of ms of CPU each), which one by one made up most
 * of the start. The daemon still configures and attaches them one by one, in load order, as each
 * becomes ready; a load that fails here is simply redone by loadTuner, with its fallbacks.
 */
import type { HookChoice } from "../kernel/hooks.ts";
import type { TunerDefinition } from "../tuning/tuner.ts";
import { type PreloadedObject, preloadTuner } from "./tuner_loader.ts";

/** Runs the jobs in order, at most `limit` at once; one promise per job. */
export function runLimited<T>(jobs: readonly (() => Promise<T>)[], limit: number): Promise<T>[] {
  const out = jobs.map(() => Promise.withResolvers<T>());
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      try {
        out[i].resolve(await jobs[i]());
      } catch (e) {
        out[i].reject(e);
      }
    }
  };
  for (let w = 0; w < Math.min(Math.max(1, limit), jobs.length); w++) worker();
  return out.map((r) => r.promise);
}

/** One load per CPU, at most 4: each holds a parsed copy of the kernel's BTF while it runs. */
export function preloadLimit(cpus = navigator.hardwareConcurrency): number {
  return Math.min(Math.max(1, cpus || 1), 4);
}

export class TunerPreloads {
  readonly #pending = new Map<string, Promise<PreloadedObject | null>>();
  /** Each tuner's own load time (they overlap), for the start-up timing line. */
  readonly ms = new Map<string, number>();
  readonly limit: number;

  constructor(
    tuners: readonly { def: TunerDefinition; choices: HookChoice[] }[],
    faultInject: ReadonlySet<string>,
    limit = preloadLimit(),
  ) {
    this.limit = limit;
    const loads = runLimited(
      tuners.map(({ def, choices }) => async () => {
        const t0 = performance.now();
        const r = await preloadTuner(def, choices, faultInject);
        if (def.object) this.ms.set(def.name, performance.now() - t0);
        return r;
      }),
      limit,
    );
    tuners.forEach(({ def }, i) => this.#pending.set(def.name, loads[i]));
  }

  /** The tuner's preloaded object (null: load it yourself); the caller owns it from here. */
  take(tuner: string): Promise<PreloadedObject | null> {
    const p = this.#pending.get(tuner) ?? Promise.resolve(null);
    this.#pending.delete(tuner);
    return p;
  }

  /** Closes every object nobody took (a start that failed half-way), now or once it is loaded. */
  close(): void {
    for (const p of this.#pending.values()) p.then((r) => r?.object.close());
    this.#pending.clear();
  }
}
