/**
 * Loads one tuner's BPF object with exactly the programs the probe chose, falls back along a
 * hook's chain when the chosen program still fails to load, configures, and attaches. Failures
 * become a reason string, never an exception that could take the daemon down.
 */
import { loadObject, type SkippedProgram } from "../libbpf/load.ts";
import type { BpfObject } from "../libbpf/object.ts";
import type { HookCandidate, HookChoice } from "../kernel/hooks.ts";
import { describeCandidate } from "../kernel/hooks.ts";
import type { TunerDefinition, TunerInstance } from "../tuning/tuner.ts";

export interface AttachedHook {
  hook: string;
  kind: string;
  target: string;
  program: string;
}

export interface LoadedTuner {
  def: TunerDefinition;
  object: BpfObject | null;
  instance: TunerInstance;
  attached: AttachedHook[];
  /** Optional hooks that could not attach, with reasons. */
  missing: { hook: string; reason: string }[];
  skipped: SkippedProgram[];
}

export interface UnavailableTuner {
  def: TunerDefinition;
  reason: string;
}

export interface LoaderOptions {
  /** cgroup v2 directory for cgroup programs. */
  cgroup: string | null;
  /**
   * Entries forced to fail (BPFPILOT_FAULT_INJECT): `<tuner>:load`, `<tuner>:<hook>` (attach), or
   * `program:<name>` (that program fails to load, so its hook falls back along the chain).
   */
  faultInject: ReadonlySet<string>;
  /** Called before a candidate is attached (e.g. to mount tracefs for classic tracepoints). */
  beforeAttach?: (c: HookCandidate) => void;
}

const FAULT = "fault injected by BPFPILOT_FAULT_INJECT";

/** Candidates still worth trying for a hook: the chosen one, then the rest of its chain. */
function remainingCandidates(def: TunerDefinition, choice: HookChoice): HookCandidate[] {
  const decl = def.hooks.find((h) => h.name === choice.hook)!;
  if (choice.chosen === null) return [];
  const start = decl.candidates.findIndex((c) =>
    c.kind === choice.chosen && c.target === choice.target && c.program === choice.program
  );
  const failedByProbe = new Set(
    choice.tried.filter((t) => !t.ok).map((t) => t.program ?? describeCandidate(t)),
  );
  return decl.candidates.slice(Math.max(start, 0)).filter((c) =>
    !failedByProbe.has(c.program) && !failedByProbe.has(describeCandidate(c))
  );
}

export function loadTuner(
  def: TunerDefinition,
  choices: HookChoice[],
  create: () => TunerInstance,
  opts: LoaderOptions,
): LoadedTuner | UnavailableTuner {
  if (opts.faultInject.has(`${def.name}:load`)) return { def, reason: FAULT };
  if (!def.object) {
    return { def, object: null, instance: create(), attached: [], missing: [], skipped: [] };
  }

  const pending = new Map<string, HookCandidate[]>();
  const missing: { hook: string; reason: string }[] = [];
  for (const c of choices) {
    const rest = remainingCandidates(def, c);
    if (rest.length) pending.set(c.hook, rest);
    else {
      const why = c.tried.map((t) => `${t.kind} ${t.target}: ${t.reason}`).join("; ");
      if (!c.optional) {
        return { def, reason: `hook ${c.hook} cannot attach on this kernel (${why})` };
      }
      missing.push({ hook: c.hook, reason: why || "no attach kind works" });
    }
  }

  let loaded: { object: BpfObject; skipped: SkippedProgram[] } | null = null;
  const allSkipped: SkippedProgram[] = [];
  for (let attempt = 0; attempt < 16 && !loaded; attempt++) {
    const selected = new Map([...pending].map(([hook, cands]) => [cands[0].program, hook]));
    let result;
    try {
      result = loadObject(def.object, {
        name: `bpfp_${def.name}`.slice(0, 15),
        enable: (p) => selected.has(p.name),
        checkTargets: false, // the probe chose these; a vanished target still fails and falls back
      });
    } catch (e) {
      return { def, reason: `BPF object failed to load: ${(e as Error).message}` };
    }
    const lost = result.skipped.filter((s) => selected.has(s.program));
    for (const program of selected.keys()) {
      if (opts.faultInject.has(`program:${program}`)) lost.push({ program, reason: FAULT });
    }
    allSkipped.push(...lost);
    if (lost.length === 0) {
      loaded = result;
      break;
    }
    result.object.close();
    for (const s of lost) {
      const hook = selected.get(s.program)!;
      const rest = pending.get(hook)!.slice(1);
      if (rest.length) pending.set(hook, rest);
      else {
        pending.delete(hook);
        const optional = choices.find((c) => c.hook === hook)?.optional;
        if (!optional) return { def, reason: `hook ${hook}: ${s.reason}` };
        missing.push({ hook, reason: s.reason });
      }
    }
  }
  if (!loaded) return { def, reason: "BPF object failed to load after every fallback" };

  const object = loaded.object;
  let instance: TunerInstance;
  try {
    instance = create();
    instance.configure?.(object);
  } catch (e) {
    object.close();
    return { def, reason: `configuring failed: ${(e as Error).message}` };
  }
  const attached: AttachedHook[] = [];
  for (const [hook, cands] of pending) {
    const c = cands[0];
    const optional = choices.find((x) => x.hook === hook)?.optional ?? false;
    try {
      if (opts.faultInject.has(`${def.name}:${hook}`)) throw new Error(FAULT);
      opts.beforeAttach?.(c);
      let target = c.target;
      if (c.kind === "cgroup") {
        if (!opts.cgroup) throw new Error("no cgroup v2 hierarchy to attach to");
        target = opts.cgroup;
      }
      object.program(c.program).attach(c.kind, target);
      attached.push({ hook, kind: c.kind, target: c.target, program: c.program });
    } catch (e) {
      const reason = (e as Error).message;
      if (!optional) {
        instance.stop?.();
        object.close();
        return { def, reason: `hook ${hook} (${c.kind} ${c.target}) failed to attach: ${reason}` };
      }
      missing.push({ hook, reason });
    }
  }
  return { def, object, instance, attached, missing, skipped: allSkipped };
}

export function isLoaded(t: LoadedTuner | UnavailableTuner): t is LoadedTuner {
  return "instance" in t;
}
