/**
 * Loading an object so that one bad program cannot sink the rest: programs whose kernel target
 * does not exist are switched off before load (with the reason recorded), and a program the
 * kernel still rejects is switched off and the object reloaded, unless it is required.
 * (bpftune lost whole tuners to one inlined function; see kernel-compat-lessons §1b.)
 */
import { KernelBtf } from "./btf.ts";
import { BpfError } from "./errors.ts";
import { BpfObject, type BpfProgram } from "./object.ts";

export interface LoadOptions {
  name: string;
  /** Programs for which this returns false are not loaded at all (not reported as skipped). */
  enable?: (program: BpfProgram) => boolean;
  /** Programs whose failure fails the whole load. */
  required?: ReadonlySet<string>;
  /** Before load, after autoload decisions (e.g. attach targets of generic programs). */
  prepare?: (object: BpfObject) => void;
  /**
   * Check each enabled program's kernel target in BTF before loading (default true). Callers
   * whose programs a probe already chose skip it: parsing vmlinux BTF costs ~20 ms, and a
   * target that vanished still fails the load and is skipped the same way.
   */
  checkTargets?: boolean;
}

export interface SkippedProgram {
  program: string;
  reason: string;
}

export interface LoadResult {
  object: BpfObject;
  skipped: SkippedProgram[];
}

let btfCache: KernelBtf | null | undefined;
/** The running kernel's parsed BTF (null without it), shared until releaseKernelBtf(). */
export function kernelBtf(): KernelBtf | null {
  if (btfCache === undefined) btfCache = KernelBtf.load();
  return btfCache;
}

/** Frees the parsed kernel BTF (megabytes) once loading is over; the next load reparses it. */
export function releaseKernelBtf(): void {
  btfCache?.close();
  btfCache = undefined;
}

/** The kernel target a section names, when it names one that BTF can confirm. */
export function sectionTarget(
  section: string,
): { kind: "function" | "tracepoint"; name: string } | null {
  const m = /^(fentry|fexit|fmod_ret|kprobe|kretprobe|tp_btf|tp|tracepoint|raw_tp)\/(.+)$/.exec(
    section,
  );
  if (!m) return null;
  const [, type, rest] = m;
  if (type === "tp" || type === "tracepoint") {
    return { kind: "tracepoint", name: rest.split("/")[1] ?? rest };
  }
  if (type === "tp_btf" || type === "raw_tp") return { kind: "tracepoint", name: rest };
  return { kind: "function", name: rest.replace(/\+.*$/, "") };
}

function missingTarget(section: string, btf: KernelBtf | null): string | null {
  const t = sectionTarget(section);
  if (!t || !btf) return null;
  if (t.kind === "function" && !btf.hasFunction(t.name)) {
    return `kernel function ${t.name} does not exist on this kernel (renamed, inlined or not built)`;
  }
  if (t.kind === "tracepoint" && !btf.hasTracepoint(t.name)) {
    return `tracepoint ${t.name} does not exist on this kernel`;
  }
  return null;
}

function failingProgram(log: string[]): string | null {
  for (const line of log) {
    const m = /prog '([^']+)': (?:BPF program load failed|failed to load|failed to find)/.exec(
      line,
    );
    if (m) return m[1];
  }
  return null;
}

export function loadObject(bytes: Uint8Array, opts: LoadOptions): LoadResult {
  const skipped: SkippedProgram[] = [];
  const off = new Set<string>();
  const required = opts.required ?? new Set<string>();
  for (let attempt = 0;; attempt++) {
    const object = BpfObject.open(bytes, { name: opts.name });
    try {
      for (const p of object.programs()) {
        const name = p.name;
        if (off.has(name) || opts.enable?.(p) === false) {
          p.setAutoload(false);
          continue;
        }
        const missing = opts.checkTargets === false
          ? null
          : missingTarget(p.sectionName, kernelBtf());
        if (missing) {
          if (required.has(name)) throw new Error(`program ${name}: ${missing}`);
          skipped.push({ program: name, reason: missing });
          off.add(name);
          p.setAutoload(false);
        }
      }
      opts.prepare?.(object);
      object.load();
      return { object, skipped };
    } catch (e) {
      object.close();
      const culprit = e instanceof BpfError ? failingProgram(e.detail) : null;
      if (!culprit || required.has(culprit) || off.has(culprit) || attempt > 32) throw e;
      const verifier = (e as BpfError).detail.filter((l) =>
        !/^libbpf: (failed to load object|-- BEGIN|-- END)/.test(l)
      );
      skipped.push({
        program: culprit,
        reason: `${(e as BpfError).message.replace(/^loading BPF object \S+ failed: /, "")}` +
          (verifier.length ? ` (${verifier[0].replace(/^libbpf: /, "")})` : ""),
      });
      off.add(culprit);
    }
  }
}
