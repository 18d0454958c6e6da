/** `bpfpilot support`: what bpfpilot can do on this kernel, for people and for scripts. */
import { lib } from "../libbpf/runtime.ts";
import {
  type KindResult,
  probeAttachKinds,
  probeKernel,
  type ProbeResult,
} from "../kernel/probe.ts";
import { TUNER_HOOKS, unavailableTuners } from "../tuners/hooks_registry.ts";
import { TUNERS } from "../tuners/registry.ts";
import { sysctlExists } from "../kernel/sysctl.ts";
import type { AttachKind } from "../kernel/hooks.ts";

export interface SupportReport {
  level: ProbeResult["level"];
  netnsCookie: boolean;
  libbpf: { path: string; version: string };
  kernel: { release: string; btf: boolean };
  features: ProbeResult["features"];
  kinds: KindResult[];
  /** Tuners with nothing to do on this kernel whatever attaches (not probed), and why. */
  unavailable?: { tuner: string; reason: string }[];
  /**
   * Every sysctl a tuner may change (unavailable tuners' too), and whether this kernel has it:
   * what an administrator (or the kernel matrix's host row) snapshots to check bpfpilot's writes.
   */
  tunables?: { tuner: string; sysctl: string; present: boolean }[];
  hooks: {
    tuner: string;
    hook: string;
    optional: boolean;
    /** What the tuner does when no candidate attaches. */
    fallback?: string | null;
    chosen: string | null;
    target: string | null;
    /** The chosen program (one hook may offer two programs of the same kind and target). */
    program?: string | null;
    tried: { kind: string; target: string; ok: boolean; reason: string; program?: string }[];
  }[];
}

export function buildSupportReport(
  opts: { legacy?: boolean; prefer?: AttachKind | null } = {},
): SupportReport {
  const l = lib();
  const probe = probeKernel(TUNER_HOOKS, {
    legacy: opts.legacy,
    prefer: opts.prefer,
    exhaustive: true,
  });
  return {
    level: probe.level,
    netnsCookie: probe.features.netnsCookie,
    libbpf: { path: l.path, version: l.version },
    kernel: { release: probe.features.release, btf: probe.features.btf },
    features: probe.features,
    kinds: probeAttachKinds(),
    unavailable: unavailableTuners(),
    tunables: TUNERS.flatMap((t) =>
      t.tunables.map((d) => ({ tuner: t.name, sysctl: d.sysctl, present: sysctlExists(d.sysctl) }))
    ),
    hooks: probe.choices.map((c) => ({
      tuner: c.tuner,
      hook: c.hook,
      optional: c.optional,
      fallback: TUNER_HOOKS.find((t) => t.tuner === c.tuner)?.hooks.find((h) => h.name === c.hook)
        ?.fallback ?? null,
      chosen: c.chosen,
      target: c.target,
      program: c.program,
      tried: c.tried,
    })),
  };
}

const LEVEL_LINE = {
  full: "bpfpilot works fully",
  legacy: "bpfpilot works in legacy mode",
  none: "bpfpilot is not supported",
};

export function supportHeadline(r: SupportReport): string[] {
  return [
    LEVEL_LINE[r.level],
    r.netnsCookie
      ? "bpfpilot supports per-netns policy (via netns cookie)"
      : "bpfpilot does not support per-netns policy (via netns cookie)",
  ];
}

export function renderSupportText(r: SupportReport): string {
  const out = [...supportHeadline(r), ""];
  const f = r.features;
  out.push(`kernel   ${r.kernel.release}, BTF ${r.kernel.btf ? "present" : "absent"}`);
  out.push(`libbpf   ${r.libbpf.version} (${r.libbpf.path})`);
  out.push(
    `features ring buffer ${yes(f.ringbuf)}, bpf_map_lookup_percpu_elem ${
      yes(f.percpuLookupHelper)
    }, ` +
      `netns cookie ${yes(f.netnsCookie)}, tracefs ${f.tracefs}, kprobes ${yes(f.kprobes)}, ` +
      `cgroup v2 ${f.cgroup2 ?? "absent"}`,
  );
  out.push("", "Attach kinds on this kernel:");
  const kw = Math.max(...r.kinds.map((k) => k.kind.length));
  for (const k of r.kinds) {
    out.push(`  ${k.kind.padEnd(kw)}  ${k.ok ? "yes" : "no "}  ${k.ok ? "" : k.reason}`.trimEnd());
  }
  if (r.unavailable?.length) {
    out.push("", "Tuners unavailable on this kernel:");
    for (const u of r.unavailable) out.push(`  ${u.tuner}: ${u.reason}`);
  }
  if (r.tunables?.length) {
    out.push("", "Sysctls the tuners may change (absent on this kernel: marked -):");
    const byTuner = Map.groupBy(r.tunables, (t) => t.tuner);
    for (const [tuner, list] of byTuner) {
      out.push(...wrapWords(`  ${tuner}:`, list.map((t) => (t.present ? "" : "-") + t.sysctl)));
    }
  }
  out.push("", "Hooks (preference order; the chosen one is marked *):");
  for (const h of r.hooks) {
    const state = h.chosen
      ? `${h.chosen} ${h.target}`
      : h.fallback
      ? `none; instead: ${h.fallback}`
      : h.optional
      ? "none (optional: the tuner runs without it)"
      : "none: the tuner cannot run";
    out.push(`  ${h.tuner}/${h.hook}: ${state}`);
    const same = (a: { kind: string; target: string }, b: { kind: string; target: string }) =>
      a.kind === b.kind && a.target === b.target;
    for (const t of h.tried) {
      // Two flavours of one kind and target (e.g. the sysctl hook's writer-less program) are
      // told apart by program name, and only the chosen program is marked.
      const twin = h.tried.filter((x) => same(x, t)).length > 1;
      const chosen = t.ok && t.kind === h.chosen && t.target === h.target &&
        (!twin || !h.program || t.program === h.program);
      const mark = chosen ? "*" : t.ok ? "+" : "-";
      const label = `${t.kind} ${t.target}${twin && t.program ? ` (${t.program})` : ""}`;
      out.push(`    ${mark} ${label.padEnd(40)} ${t.ok ? "works" : t.reason}`);
    }
  }
  return out.join("\n");
}

/** `head` then `words`, in lines of at most 100 columns, continued under the first word. */
function wrapWords(head: string, words: string[]): string[] {
  const lines = [head];
  const indent = " ".repeat(head.length + 1);
  for (const w of words) {
    const last = lines.length - 1;
    if (lines[last].length + 1 + w.length > 100 && lines[last] !== head) lines.push(indent + w);
    else lines[last] += " " + w;
  }
  return lines;
}

function yes(b: boolean): string {
  return b ? "yes" : "no";
}
