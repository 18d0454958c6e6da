/**
 * The one fallback engine: load an object with the first workable candidate of every hook, and
 * when the kernel refuses a program (load) or its attachment (attach), move that hook to the next
 * candidate of its chain and try again. An optional hook whose chain runs out is left out; a
 * required one makes the whole thing unavailable, with the reasons. Used by the daemon's tuner
 * loader (and so the audit window) and by the probe's program verification (`support`).
 * Pure: the kernel operations are passed in, so every branch is unit-tested on fakes.
 */

export interface ChainHook<C> {
  name: string;
  optional: boolean;
  /** Candidates in the order to try them. */
  candidates: readonly C[];
}

export interface Refusal {
  hook: string;
  program: string;
  stage: "rule" | "load" | "attach";
  reason: string;
}

export interface FallbackOps<O, C> {
  program(c: C): string;
  /** Why `c` cannot work, known without loading it (e.g. the probe said so); null: try it. */
  rule?(c: C): string | null;
  /**
   * Loads the object with exactly these programs. Programs the kernel refused are returned (the
   * object is then closed by the engine and reloaded without them). Throwing means the object as
   * a whole cannot load: no fallback can help.
   */
  load(programs: readonly string[]): { object: O; refused: { program: string; reason: string }[] };
  /** After a clean load, before attaching (configuration); throwing makes it unavailable. */
  prepare?(object: O): void;
  /** Attaches hook `hook` with candidate `c`; throws the reason when refused. */
  attach(object: O, hook: string, c: C): void;
  /** Releases the object and everything attached to it. */
  close(object: O): void;
}

export interface FallbackChosen<C> {
  hook: string;
  candidate: C;
}

export type FallbackResult<O, C> =
  | {
    ok: true;
    object: O;
    chosen: FallbackChosen<C>[];
    /** Optional hooks whose chains ran out, with the last reason. */
    missing: { hook: string; reason: string }[];
    refused: Refusal[];
  }
  | { ok: false; reason: string; refused: Refusal[] };

/** A bound on reloads: every round drops at least one candidate, so chains end long before. */
const MAX_ROUNDS = 64;

export function loadWithFallback<O, C>(
  hooks: readonly ChainHook<C>[],
  ops: FallbackOps<O, C>,
): FallbackResult<O, C> {
  const refused: Refusal[] = [];
  const missing: { hook: string; reason: string }[] = [];
  const position = new Map(hooks.map((h) => [h.name, 0]));
  const lastReason = new Map<string, string>();
  const active = new Set(hooks.map((h) => h.name));

  /** Moves `hook` to its next candidate allowed by the rule; false when its chain ran out. */
  const settle = (h: ChainHook<C>): boolean => {
    let i = position.get(h.name)!;
    for (; i < h.candidates.length; i++) {
      const why = ops.rule?.(h.candidates[i]) ?? null;
      if (why === null) break;
      const program = ops.program(h.candidates[i]);
      refused.push({ hook: h.name, program, stage: "rule", reason: why });
    }
    position.set(h.name, i);
    return i < h.candidates.length;
  };
  /** `hook`'s chain ran out: fine for an optional hook, the end for a required one. */
  const exhausted = (h: ChainHook<C>): string | null => {
    active.delete(h.name);
    const last = lastReason.get(h.name);
    // Only the rule said no (nothing was loaded): every candidate's reason.
    const why = last ?? (refused.filter((r) => r.hook === h.name).map((r) => r.reason).join("; ") ||
      "no attach kind works");
    if (!h.optional) {
      return last
        ? `hook ${h.name}: ${last}`
        : `hook ${h.name} cannot attach on this kernel (${why})`;
    }
    missing.push({ hook: h.name, reason: why });
    return null;
  };
  const advance = (h: ChainHook<C>, stage: "load" | "attach", reason: string): string | null => {
    const program = ops.program(h.candidates[position.get(h.name)!]);
    refused.push({ hook: h.name, program, stage, reason });
    lastReason.set(h.name, reason);
    position.set(h.name, position.get(h.name)! + 1);
    return settle(h) ? null : exhausted(h);
  };

  for (const h of hooks) {
    if (!settle(h)) {
      const fatal = exhausted(h);
      if (fatal) return { ok: false, reason: fatal, refused };
    }
  }
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const live = hooks.filter((h) => active.has(h.name));
    const head = (h: ChainHook<C>) => h.candidates[position.get(h.name)!];
    const byProgram = new Map(live.map((h) => [ops.program(head(h)), h]));
    let loaded;
    try {
      loaded = ops.load([...byProgram.keys()]);
    } catch (e) {
      return { ok: false, reason: `BPF object failed to load: ${(e as Error).message}`, refused };
    }
    const lost = loaded.refused.filter((r) => byProgram.has(r.program));
    if (lost.length > 0) {
      ops.close(loaded.object);
      for (const r of lost) {
        const fatal = advance(byProgram.get(r.program)!, "load", r.reason);
        if (fatal) return { ok: false, reason: fatal, refused };
      }
      continue;
    }
    const object = loaded.object;
    try {
      ops.prepare?.(object);
    } catch (e) {
      ops.close(object);
      return { ok: false, reason: `configuring failed: ${(e as Error).message}`, refused };
    }
    let failed: ChainHook<C> | null = null, failure = "";
    const chosen: FallbackChosen<C>[] = [];
    for (const h of live) {
      try {
        ops.attach(object, h.name, head(h));
        chosen.push({ hook: h.name, candidate: head(h) });
      } catch (e) {
        failed = h;
        failure = (e as Error).message;
        break;
      }
    }
    if (!failed) return { ok: true, object, chosen, missing, refused };
    // Detach everything and reload: the next candidate is another program of the object.
    ops.close(object);
    const fatal = advance(failed, "attach", failure);
    if (fatal) return { ok: false, reason: fatal, refused };
  }
  return { ok: false, reason: "BPF object failed to load after every fallback", refused };
}

export const FAULT = "fault injected by BPFPILOT_FAULT_INJECT";

/**
 * Fault injection (BPFPILOT_FAULT_INJECT) as a layer over real operations: `program:<name>` makes
 * that program's load fail (its hook falls back along the chain), `<tuner>:<hook>` makes every
 * attach of that hook fail.
 */
export function withFaults<O, C>(
  ops: FallbackOps<O, C>,
  faults: ReadonlySet<string>,
  tuner: string,
): FallbackOps<O, C> {
  if (faults.size === 0) return ops;
  return {
    ...ops,
    load(programs) {
      const r = ops.load(programs);
      const injected = programs.filter((p) => faults.has(`program:${p}`))
        .map((program) => ({ program, reason: FAULT }));
      return { object: r.object, refused: [...r.refused, ...injected] };
    },
    attach(object, hook, c) {
      if (faults.has(`${tuner}:${hook}`)) throw new Error(FAULT);
      ops.attach(object, hook, c);
    },
  };
}
