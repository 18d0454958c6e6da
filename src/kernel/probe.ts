/**
 * What this kernel can do: BTF, each hook's attach kinds (by really loading and attaching a
 * trivial program at the hook's real target), helpers, ring buffer, netns cookies. Results are
 * cached per boot, kernel and product version, since the answers cannot change in between.
 */
import { BPF_OBJECTS } from "../embedded.ts";
import { KernelBtf } from "../libbpf/btf.ts";
import { BpfError } from "../libbpf/errors.ts";
import { BpfObject } from "../libbpf/object.ts";
import { loadObject } from "../libbpf/load.ts";
import { lib, withCapturedLog } from "../libbpf/runtime.ts";
import { VERSION } from "../version.ts";
import { cgroup2Root, makeChildCgroup, ownCgroup, sweepStaleProbeCgroups } from "./cgroup.ts";
import {
  type AttachKind,
  type HookCandidate,
  type HookChoice,
  type HookDecl,
  orderCandidates,
  type TryResult,
} from "./hooks.ts";
import { ensureTracefs, tracefsMounted, tracefsSupported } from "./tracefs.ts";
import { loadWithFallback } from "./hook_fallback.ts";
import { readBootId } from "./boot_id.ts";

/** The probe's own child cgroup: this prefix and its pid. */
const PROBE_CGROUP_PREFIX = "bpfpilot-probe-";

export interface KernelFeatures {
  release: string;
  btf: boolean;
  ringbuf: boolean;
  percpuLookupHelper: boolean;
  netnsCookie: boolean;
  tracefs: "mounted" | "mountable" | "absent";
  kprobes: boolean;
  cgroup2: string | null;
}

/** What the chooser needs from a kernel; faked in unit tests. */
export interface Prober {
  features(): KernelFeatures;
  tryCandidate(c: HookCandidate): TryResult;
}

export type SupportLevel = "full" | "legacy" | "none";

export interface TunerHooks {
  tuner: string;
  hooks: HookDecl[];
  /**
   * The tuner's BPF object: the chosen programs themselves are load-tested, since a trivial probe
   * program can attach where the real one is refused (e.g. a helper the kernel lacks).
   */
  object?: Uint8Array;
}

/**
 * Picks the first working kind of every hook, in preference order (reversed when legacy).
 * `exhaustive` also tries the kinds after the chosen one, for a complete support matrix.
 */
export function chooseHooks(
  tuners: TunerHooks[],
  prober: Prober,
  legacy = false,
  exhaustive = false,
  prefer: AttachKind | null = null,
): HookChoice[] {
  const out: HookChoice[] = [];
  for (const t of tuners) {
    for (const h of t.hooks) {
      const tried: TryResult[] = [];
      let chosen: HookCandidate | null = null;
      for (const c of orderCandidates(h, legacy, prefer)) {
        const r = { ...prober.tryCandidate(c), program: c.program };
        tried.push(r);
        if (r.ok && !chosen) {
          chosen = c;
          if (!exhaustive) break;
        }
      }
      out.push({
        tuner: t.tuner,
        hook: h.name,
        optional: h.optional ?? false,
        chosen: chosen?.kind ?? null,
        target: chosen?.target ?? null,
        program: chosen?.program ?? null,
        tried,
      });
    }
  }
  return out;
}

/**
 * full: every hook attaches with its first preference; legacy: every tuner can run, but some
 * hooks fell back, or an optional hook is missing, or a tuner is unavailable while others run;
 * none: no BTF-capable, BPF-capable setup or no tuner can run at all.
 */
export function supportLevel(
  choices: HookChoice[],
  tuners: TunerHooks[],
  features: KernelFeatures,
): SupportLevel {
  if (!features.ringbuf) return "none";
  const runnable = tuners.filter((t) =>
    choices.filter((c) => c.tuner === t.tuner && !c.optional).every((c) => c.chosen !== null)
  );
  if (runnable.length === 0) return "none";
  // A hook whose tuner has a designed fallback (e.g. a /proc poll) does not degrade the level.
  const hasFallback = (c: HookChoice) =>
    tuners.find((t) => t.tuner === c.tuner)?.hooks.find((h) => h.name === c.hook)?.fallback !==
      undefined;
  const degraded = runnable.length < tuners.length ||
    choices.some((c) => !hasFallback(c) && (c.chosen === null || !c.tried[0]?.ok));
  return degraded ? "legacy" : "full";
}

/**
 * Loads each tuner's object with its chosen programs; a chosen program the kernel refuses is
 * marked failed (with the verifier's reason) and its hook moves on along the chain (the fallback
 * engine, with the prober's verdict on candidates it had not tried yet).
 */
export function verifyPrograms(
  tuners: TunerHooks[],
  choices: HookChoice[],
  prober: Prober,
  legacy: boolean,
  prefer: AttachKind | null = null,
): void {
  for (const t of tuners) {
    if (!t.object) continue;
    const object = t.object;
    const mine = choices.filter((c) => c.tuner === t.tuner && c.program);
    if (mine.length === 0) continue;
    const chains = mine.map((c) => {
      const order = orderCandidates(t.hooks.find((h) => h.name === c.hook)!, legacy, prefer);
      // Verification only finds what works: no hook is required here.
      return {
        name: c.hook,
        optional: true,
        candidates: order.slice(order.findIndex((x) => x.program === c.program)),
      };
    });
    const choiceOf = (hook: string) => mine.find((c) => c.hook === hook)!;
    const tried = (hook: string, cand: HookCandidate) => {
      const c = choiceOf(hook);
      let r = c.tried.find((x) => x.program === cand.program);
      if (!r) {
        r = { ...prober.tryCandidate(cand), program: cand.program };
        c.tried.push(r);
      }
      return r;
    };
    const hookOf = new Map(chains.flatMap((h) => h.candidates.map((c) => [c, h.name] as const)));
    const r = loadWithFallback<{ close(): void }, HookCandidate>(chains, {
      program: (c) => c.program,
      rule: (c) => {
        const verdict = tried(hookOf.get(c)!, c);
        return verdict.ok ? null : verdict.reason;
      },
      load(programs) {
        const loaded = loadObject(object, {
          name: "bpfp_verify",
          enable: (p) => programs.includes(p.name),
        });
        return { object: loaded.object, refused: loaded.skipped };
      },
      attach() {}, // the prober attached a program at this target already
      close: (o) => o.close(),
    });
    // The object as a whole failed: the daemon reports that with its own words.
    if (!r.ok) continue;
    r.object.close();
    for (const x of r.refused.filter((x) => x.stage === "load")) {
      const entry = choiceOf(x.hook).tried.find((e) => e.program === x.program && e.ok);
      if (entry) {
        entry.ok = false;
        entry.reason = `a probe attached here, but ${x.program} does not load: ${x.reason}`;
      }
    }
    for (const c of mine) {
      const chosen = r.chosen.find((x) => x.hook === c.hook)?.candidate ?? null;
      c.chosen = chosen?.kind ?? null;
      c.target = chosen?.target ?? null;
      c.program = chosen?.program ?? null;
    }
  }
}

/** Reasons for kinds a feature rules out before any load is tried. */
function precheck(c: HookCandidate, f: KernelFeatures, btf: KernelBtf | null): string | null {
  const needsBtf = c.kind === "tp_btf" || c.kind === "fentry";
  if (needsBtf && !btf) return "the kernel has no BTF (CONFIG_DEBUG_INFO_BTF is off)";
  if (c.kind === "kprobe" && !f.kprobes) {
    return "kprobes are not built into this kernel (CONFIG_KPROBES is off)";
  }
  if (c.kind === "tracepoint" && f.tracefs === "absent") {
    return "the kernel has no tracefs, which classic tracepoints need";
  }
  if (c.kind === "cgroup" && !f.cgroup2) return "no cgroup v2 hierarchy is mounted";
  if (!btf) return null;
  if (c.kind === "fentry" || c.kind === "kprobe") {
    if (!btf.hasFunction(c.target)) {
      return `kernel function ${c.target} does not exist on this kernel (renamed, inlined or ` +
        `not built)`;
    }
  }
  if (c.kind === "tp_btf" || c.kind === "raw_tp" || c.kind === "tracepoint") {
    const name = c.kind === "tracepoint" ? c.target.split("/")[1] : c.target;
    if (!btf.hasTracepoint(name)) return `tracepoint ${c.target} does not exist on this kernel`;
  }
  return null;
}

const PROBE_PROGRAM: Record<AttachKind, string> = {
  tp_btf: "bpfp_pr_tp_btf",
  raw_tp: "bpfp_pr_raw_tp",
  tracepoint: "bpfp_pr_tp",
  fentry: "bpfp_pr_fentry",
  kprobe: "bpfp_pr_kprobe",
  cgroup: "bpfp_pr_sockops",
};

function reasonOf(e: unknown): string {
  if (e instanceof BpfError) {
    const verifier = e.detail.find((l) => /verifier|invalid|unknown func/i.test(l));
    return e.message.replace(/^.*? failed: /, "") + (verifier ? ` (${verifier.trim()})` : "");
  }
  return (e as Error).message;
}

/** Loads one probe program aimed at the candidate's target and attaches it for real. */
export class LiveProber implements Prober {
  #features: KernelFeatures | null = null;
  #btf: KernelBtf | null | undefined = undefined;
  #cgroup: { path: string; remove(): void } | null = null;
  /** precheck() answers by kind and target, from prechecked(). */
  #prechecks = new Map<string, string | null>();

  /**
   * Answers the prechecks of `candidates` at once and frees the parsed kernel BTF they read: held
   * while each probe program's load parses its own copy, it took 6 MB more of the peak (a cold
   * probe's RssAnon 42 MB, 36 without it).
   */
  prechecked(candidates: HookCandidate[]): void {
    const f = this.features();
    for (const c of candidates) {
      this.#prechecks.set(`${c.kind} ${c.target}`, precheck(c, f, this.#kernelBtf()));
    }
    this.#btf?.close();
    this.#btf = undefined;
  }

  #kernelBtf(): KernelBtf | null {
    if (this.#btf === undefined) this.#btf = KernelBtf.load();
    return this.#btf;
  }

  features(): KernelFeatures {
    if (this.#features) return this.#features;
    const btf = this.#kernelBtf();
    const mapProbe = lib().bpf.libbpf_probe_bpf_map_type;
    this.#features = {
      release: Deno.osRelease(),
      btf: btf !== null,
      ringbuf: mapProbe ? mapProbe(27, /* RINGBUF */ null) === 1 : true,
      percpuLookupHelper: this.#loadsAlone("bpfp_pr_percpu"),
      netnsCookie: netnsCookieSupported(),
      tracefs: tracefsMounted() ? "mounted" : tracefsSupported() ? "mountable" : "absent",
      kprobes: kprobesAvailable(),
      cgroup2: cgroup2Root(),
    };
    return this.#features;
  }

  #loadsAlone(program: string): boolean {
    const obj = BpfObject.open(BPF_OBJECTS.probe, { name: "bpfp_probe" });
    try {
      for (const p of obj.programs()) p.setAutoload(p.name === program);
      return withCapturedLog(() => obj.load()).error === undefined;
    } finally {
      obj.close();
    }
  }

  tryCandidate(c: HookCandidate): TryResult {
    const f = this.features();
    const key = `${c.kind} ${c.target}`;
    const pre = this.#prechecks.has(key)
      ? this.#prechecks.get(key) ?? null
      : precheck(c, f, this.#kernelBtf());
    if (pre) return { kind: c.kind, target: c.target, ok: false, reason: pre };
    const program = c.kind === "cgroup" && c.target === "sysctl"
      ? "bpfp_pr_sysctl"
      : PROBE_PROGRAM[c.kind];
    const obj = BpfObject.open(BPF_OBJECTS.probe, { name: "bpfp_probe" });
    let tracefs: { release(): void } | null = null;
    try {
      for (const p of obj.programs()) p.setAutoload(p.name === program);
      const prog = obj.program(program);
      if (c.kind === "tp_btf" || c.kind === "fentry") prog.setAttachTarget(c.target);
      const attempt = withCapturedLog(() => {
        obj.load();
        if (c.kind === "tracepoint") tracefs = ensureTracefs();
        prog.attach(c.kind, c.kind === "cgroup" ? this.#probeCgroup() : c.target);
      });
      if (attempt.error !== undefined) {
        return { kind: c.kind, target: c.target, ok: false, reason: reasonOf(attempt.error) };
      }
      const note = c.kind === "tracepoint" && f.tracefs === "mountable"
        ? " (tracefs is not mounted; bpfpilot mounts it at /sys/kernel/tracing when needed)"
        : "";
      return { kind: c.kind, target: c.target, ok: true, reason: `attached${note}` };
    } catch (e) {
      return { kind: c.kind, target: c.target, ok: false, reason: reasonOf(e) };
    } finally {
      obj.close();
      (tracefs as { release(): void } | null)?.release();
    }
  }

  /** A child cgroup of our own: probes never attach to the root cgroup. */
  #probeCgroup(): string {
    if (!this.#cgroup) {
      const root = this.features().cgroup2!;
      // A bpfpilot killed while probing (SIGKILL, OOM) could not remove its own.
      sweepStaleProbeCgroups(root, PROBE_CGROUP_PREFIX);
      try {
        this.#cgroup = makeChildCgroup(root, `${PROBE_CGROUP_PREFIX}${Deno.pid}`);
      } catch (e) {
        // A read-only cgroup tree (systemd's ProtectControlGroups=yes) or a 0555 root without
        // CAP_DAC_OVERRIDE: attaching needs only a directory fd, so probe in our own cgroup
        // (a unit's, never the root) for the moment the probe program is attached.
        const own = ownCgroup(root, readOwnCgroupFile());
        if (!own) throw e;
        this.#cgroup = { path: own, remove() {} };
      }
    }
    return this.#cgroup.path;
  }

  close(): void {
    this.#cgroup?.remove();
    this.#cgroup = null;
    this.#btf?.close();
    this.#btf = undefined;
  }
}

function readOwnCgroupFile(): string {
  try {
    return Deno.readTextFileSync("/proc/self/cgroup");
  } catch {
    return "";
  }
}

function kprobesAvailable(): boolean {
  for (const p of ["/sys/bus/event_source/devices/kprobe/type"]) {
    try {
      Deno.statSync(p);
      return true;
    } catch {
      // absent
    }
  }
  // Legacy kprobes through tracefs' kprobe_events exist only with CONFIG_KPROBE_EVENTS.
  for (const d of ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]) {
    try {
      Deno.statSync(`${d}/kprobe_events`);
      return true;
    } catch {
      // absent
    }
  }
  return false;
}

/** SO_NETNS_COOKIE (5.14+) lets userspace name a network namespace the way BPF programs do. */
export function netnsCookieSupported(): boolean {
  const { libc } = lib();
  const fd = libc.socket(1, /* AF_UNIX */ 2, /* SOCK_DGRAM */ 0);
  if (fd < 0) return false;
  try {
    const val = new Uint8Array(8);
    const len = new Uint32Array([8]);
    const rc = libc.getsockopt(
      fd,
      1, /* SOL_SOCKET */
      71, /* SO_NETNS_COOKIE */
      val,
      new Uint8Array(len.buffer),
    );
    return rc === 0;
  } finally {
    libc.close(fd);
  }
}

export interface ProbeResult {
  features: KernelFeatures;
  choices: HookChoice[];
  level: SupportLevel;
}

export interface ProbeOptions {
  legacy?: boolean;
  /** Try every candidate, not just up to the first that works (the support matrix). */
  exhaustive?: boolean;
  /**
   * Load-test each tuner's chosen programs (default true). The daemon skips it: its own load of
   * the same objects falls back along the chains the same way, so doing both costs twice.
   */
  verify?: boolean;
  /** Try this attach kind first on every hook. */
  prefer?: AttachKind | null;
  /** Cache file; null disables caching. */
  cacheFile?: string | null;
}

const CACHE_FORMAT = "bpfpilot-probe-cache";

/**
 * Two 32-bit FNV-1a hashes (different offsets) and the length: tells a rebuilt object from the one
 * a cache entry was probed with. Not a defence: only root writes the cache.
 */
export function fingerprint(bytes: Uint8Array): string {
  let a = 0x811c9dc5, b = 0x050c5d1f;
  for (let i = 0; i < bytes.length; i++) {
    a = Math.imul(a ^ bytes[i], 0x01000193);
    b = Math.imul(b ^ bytes[i], 0x01000193);
  }
  return `${bytes.length}:${(a >>> 0).toString(16)}${(b >>> 0).toString(16)}`;
}

/**
 * Probes every declared hook (or reads the cache written by an earlier probe in this boot, for
 * this kernel, product version and set of hook declarations).
 */
export function probeKernel(tuners: TunerHooks[], opts: ProbeOptions = {}): ProbeResult {
  const key = JSON.stringify({
    v: VERSION,
    boot: readBootId() ?? "unknown",
    release: Deno.osRelease(),
    legacy: opts.legacy ?? false,
    exhaustive: opts.exhaustive ?? false,
    verify: opts.verify ?? true,
    prefer: opts.prefer ?? null,
    tuners: tuners.map((t) => ({
      tuner: t.tuner,
      hooks: t.hooks,
      object: t.object ? fingerprint(t.object) : null,
    })),
  });
  const cacheFile = opts.cacheFile;
  if (cacheFile) {
    try {
      const c = JSON.parse(Deno.readTextFileSync(cacheFile));
      if (c.format === CACHE_FORMAT && c.key === key) return c.result as ProbeResult;
    } catch {
      // no usable cache: probe
    }
  }
  const prober = new LiveProber();
  try {
    prober.prechecked(tuners.flatMap((t) => t.hooks.flatMap((h) => h.candidates)));
    const features = prober.features();
    const choices = chooseHooks(tuners, prober, opts.legacy, opts.exhaustive, opts.prefer);
    if (opts.verify ?? true) {
      verifyPrograms(tuners, choices, prober, opts.legacy ?? false, opts.prefer ?? null);
    }
    let level = supportLevel(choices, tuners, features);
    // Asked for fallbacks: whatever attached, this is not the full (first-preference) setup.
    if ((opts.legacy || opts.prefer) && level === "full") level = "legacy";
    const result = { features, choices, level };
    if (cacheFile) {
      try {
        const tmp = `${cacheFile}.${Deno.pid}.tmp`;
        Deno.writeTextFileSync(tmp, JSON.stringify({ format: CACHE_FORMAT, key, result }));
        Deno.renameSync(tmp, cacheFile);
      } catch {
        // caching is an optimisation only
      }
    }
    return result;
  } finally {
    prober.close();
  }
}

/** Reference targets that exist on every supported kernel: what each attach kind can do here. */
export const REFERENCE_CANDIDATES: HookCandidate[] = [
  { kind: "tp_btf", target: "sched_process_exec", program: "" },
  { kind: "raw_tp", target: "sched_process_exec", program: "" },
  { kind: "tracepoint", target: "sched/sched_process_exec", program: "" },
  { kind: "fentry", target: "tcp_sendmsg", program: "" },
  { kind: "kprobe", target: "tcp_sendmsg", program: "" },
  { kind: "cgroup", target: "sockops", program: "" },
  { kind: "cgroup", target: "sysctl", program: "" },
];

export interface KindResult {
  kind: string;
  target: string;
  ok: boolean;
  reason: string;
}

export function probeAttachKinds(): KindResult[] {
  const prober = new LiveProber();
  try {
    return REFERENCE_CANDIDATES.map((c) => {
      const { target, ok, reason } = prober.tryCandidate(c);
      return { kind: c.kind === "cgroup" ? `cgroup/${c.target}` : c.kind, target, ok, reason };
    });
  } finally {
    prober.close();
  }
}
