/**
 * Loads one tuner's BPF object with exactly the programs the probe chose, configures and
 * attaches; the fallback engine (kernel/hook_fallback.ts) moves a hook along its chain when its
 * program fails to load or attach. Failures become a reason string, never an exception that
 * could take the daemon down.
 */
import { loadObject, type SkippedProgram } from "../libbpf/load.ts";
import { type ChainHook, FAULT, loadWithFallback, withFaults } from "../kernel/hook_fallback.ts";
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

interface ObservedTuner {
  def: TunerDefinition;
  attached: readonly AttachedHook[];
  missing: readonly { hook: string; reason: string }[];
}

/**
 * What a loaded tuner observes through, for logs and status lines: its attached hooks (`detail`:
 * with kind and target, else the kind alone), then what runs instead of each missing optional
 * hook that has a fallback (e.g. ip_frag's poll of /proc). Never empty.
 */
export function observedThrough(
  t: ObservedTuner,
  detail: boolean,
): string {
  const hooks = t.attached.map((a) =>
    detail ? `${a.hook} via ${a.kind} ${a.target}` : `${a.hook} (${a.kind})`
  );
  const fallbacks = new Set<string>();
  for (const m of t.missing) {
    const fallback = t.def.hooks.find((h) => h.name === m.hook)?.fallback;
    if (fallback) fallbacks.add(fallback);
  }
  const instead = [...fallbacks].map((f) => `instead of ${missingFor(t, f)}: ${f}`);
  const all = [...hooks, ...instead];
  return all.length ? all.join(", ") : "no hook attached";
}

/** The missing hooks whose fallback is `fallback`, by name. */
function missingFor(t: ObservedTuner, fallback: string): string {
  return t.missing.filter((m) => t.def.hooks.find((h) => h.name === m.hook)?.fallback === fallback)
    .map((m) => m.hook).join(", ");
}

export interface UnavailableTuner {
  def: TunerDefinition;
  reason: string;
  /** The tuner itself says it has nothing to do here (e.g. a limit the kernel does not enforce). */
  nothingToDo?: boolean;
}

export interface LoaderOptions {
  /** cgroup v2 directory for cgroup programs. */
  cgroup: string | null;
  /**
   * Entries forced to fail (BPFPILOT_FAULT_INJECT): `<tuner>:load`, `<tuner>:<hook>` (attach), or
   * `program:<name>` (that program fails to load, so its hook falls back along the chain), or
   * `sysctl:<name>` (the daemon reads that sysctl as absent, e.g. IPv6 disabled).
   */
  faultInject: ReadonlySet<string>;
  /** Called before a candidate is attached (e.g. to mount tracefs for classic tracepoints). */
  beforeAttach?: (c: HookCandidate) => void;
}

/**
 * A hook's candidates in the order the probe tried them (its choice last among those), then the
 * ones it did not get to; `probeRefusal` says which the probe already found unworkable.
 */
function chainOf(def: TunerDefinition, choice: HookChoice): ChainHook<HookCandidate> {
  const decl = def.hooks.find((h) => h.name === choice.hook)!;
  const tried = choice.tried.map((t) =>
    decl.candidates.find((c) =>
      t.program ? c.program === t.program : c.kind === t.kind && c.target === t.target
    )
  ).filter((c): c is HookCandidate => c !== undefined);
  const rest = decl.candidates.filter((c) => !tried.includes(c));
  return { name: choice.hook, optional: choice.optional, candidates: [...tried, ...rest] };
}

function probeRefusal(choices: HookChoice[], c: HookCandidate): string | null {
  for (const choice of choices) {
    const t = choice.tried.find((t) =>
      t.program ? t.program === c.program : describeCandidate(t) === describeCandidate(c)
    );
    if (t && !t.ok) return `${t.kind} ${t.target}: ${t.reason}`;
  }
  return null;
}

function objectName(def: TunerDefinition): string {
  return `bpfp_${def.name}`.slice(0, 15);
}

/** The chains the fallback engine walks and the probe's refusals as its rule. */
function chainsOf(def: TunerDefinition, choices: HookChoice[]) {
  return {
    chains: choices.map((c) => chainOf(def, c)),
    program: (c: HookCandidate) => c.program,
    rule: (c: HookCandidate) => probeRefusal(choices, c),
  };
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
  const object = def.object;
  let instance: TunerInstance | null = null;
  const { chains, program, rule } = chainsOf(def, choices);
  const ops = withFaults<BpfObject, HookCandidate>(
    {
      program,
      rule,
      load(programs) {
        const result = loadObject(object, {
          name: objectName(def),
          enable: (p) => programs.includes(p.name),
          checkTargets: false, // the probe chose these; a vanished target still fails and falls back
        });
        return { object: result.object, refused: result.skipped };
      },
      prepare(obj) {
        instance ??= create();
        instance.configure?.(obj);
      },
      attach(obj, _hook, c) {
        opts.beforeAttach?.(c);
        let target = c.target;
        if (c.kind === "cgroup") {
          if (!opts.cgroup) throw new Error("no cgroup v2 hierarchy to attach to");
          target = opts.cgroup;
        }
        obj.program(c.program).attach(c.kind, target);
      },
      close: (obj) => obj.close(),
    },
    opts.faultInject,
    def.name,
  );
  const r = loadWithFallback(chains, ops);
  const skipped = r.refused.filter((x) => x.stage === "load")
    .map((x) => ({ program: x.program, reason: x.reason }));
  if (!r.ok) {
    (instance as TunerInstance | null)?.stop?.();
    return { def, reason: r.reason };
  }
  const attached = r.chosen.map(({ hook, candidate: c }) => ({
    hook,
    kind: c.kind,
    target: c.target,
    program: c.program,
  }));
  try {
    instance!.onAttached?.(
      attached.map((a) => a.hook),
      new Map(r.chosen.map(({ hook, candidate: c }) => [hook, c.kind])),
    );
  } catch (e) {
    instance!.stop?.();
    r.object.close();
    return { def, reason: `starting failed: ${(e as Error).message}` };
  }
  return { def, object: r.object, instance: instance!, attached, missing: r.missing, skipped };
}

export function isLoaded(t: LoadedTuner | UnavailableTuner): t is LoadedTuner {
  return "instance" in t;
}
