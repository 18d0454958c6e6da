/**
 * Kernel-side cost of every tuner's BPF programs: run_time_ns and run_cnt per program, from the
 * kernel's BPF statistics (kernel.bpf_stats_enabled, switched on for the measurement and put
 * back afterwards), for the programs a daemon holds. Programs map to tuners through the tuners'
 * hook declarations (src/tuners/registry.ts), so a new tuner shows up without bench changes.
 */
import { bpftoolJson, programIdsOf } from "./bpf_stats.ts";
import { readFileSync, writeFileSync } from "node:fs";
import { TUNER_HOOKS } from "../../src/tuners/hooks_registry.ts";
import { onCleanup } from "./cleanup.ts";

const STATS_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled";

export interface ProgCost {
  tuner: string;
  program: string;
  /** The hook's attach target (tracepoint or function). */
  target: string;
  runNs: number;
  runs: number;
}

/** Turns the kernel's BPF run-time statistics on until the bench's cleanup. */
export function enableBpfStats(): void {
  const before = readFileSync(STATS_SYSCTL, "utf8").trim();
  if (before === "1") return;
  writeFileSync(STATS_SYSCTL, "1");
  onCleanup(`restore kernel.bpf_stats_enabled=${before}`, () => {
    writeFileSync(STATS_SYSCTL, before);
  });
}

/** Program name (as the kernel keeps it: at most 15 characters) -> tuner. */
function tunerOf(name: string): { tuner: string; program: string; target: string } | null {
  for (const t of TUNER_HOOKS) {
    for (const h of t.hooks) {
      for (const c of h.candidates) {
        if (c.program === name || (name.length === 15 && c.program.startsWith(name))) {
          return { tuner: t.tuner, program: c.program, target: c.target };
        }
      }
    }
  }
  return null;
}

/** Run time and count of each tuner program daemon `pid` holds. */
export function readProgCosts(pid: number): ProgCost[] {
  const out: ProgCost[] = [];
  for (const id of programIdsOf(pid)) {
    const p = bpftoolJson(["prog", "show", "id", `${id}`]) as {
      name?: string;
      run_time_ns?: number;
      run_cnt?: number;
    };
    const owner = p.name ? tunerOf(p.name) : null;
    if (!owner) continue;
    out.push({ ...owner, runNs: p.run_time_ns ?? 0, runs: p.run_cnt ?? 0 });
  }
  return out;
}

/** Per-program deltas between two readings (programs present in both). */
export function costDelta(a: ProgCost[], b: ProgCost[]): ProgCost[] {
  return b.flatMap((x) => {
    const y = a.find((p) => p.program === x.program);
    return y ? [{ ...x, runNs: x.runNs - y.runNs, runs: x.runs - y.runs }] : [];
  });
}

/** Sums per tuner: ns per run over all its programs, and each program that ran, busiest first. */
export function perTuner(
  costs: ProgCost[],
): { tuner: string; runs: number; nsPerRun: number; programs: ProgCost[] }[] {
  const tuners = [...new Set(TUNER_HOOKS.map((t) => t.tuner))];
  return tuners.map((tuner) => {
    const mine = costs.filter((c) => c.tuner === tuner);
    const runs = mine.reduce((s, c) => s + c.runs, 0);
    const ns = mine.reduce((s, c) => s + c.runNs, 0);
    const programs = mine.filter((c) => c.runs > 0).sort((a, b) => b.runs - a.runs);
    return { tuner, runs, nsPerRun: runs ? ns / runs : 0, programs };
  });
}
