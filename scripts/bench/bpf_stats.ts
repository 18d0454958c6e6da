/**
 * The tcp_buffer object's per-CPU counters (bpfp_stats, slots as in bpf/include/bpfpilot.h), read
 * with bpftool while the daemon runs. Several bpfpilot objects (and other daemons) may be loaded,
 * each with its own bpfp_stats: the right one is found through the programs this daemon holds
 * (/proc/<pid>/fdinfo prog_id) named bpfp_tb_*, and their map_ids.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export interface HookStats {
  hits: number;
  emitted: number;
  suppressed: number;
  dropped: number;
  skipped: number;
  /** Not sent: userspace muted the key (nothing the event could change). */
  muted: number;
}

const SLOTS = ["hits", "emitted", "suppressed", "dropped", "skipped", "muted"] as const;

export function bpftoolJson(args: string[]): unknown {
  return JSON.parse(execFileSync("bpftool", [...args, "-j"], { encoding: "utf8" }));
}

/** IDs of the BPF programs process `pid` holds open (from its fdinfo). */
export function programIdsOf(pid: number): number[] {
  const ids = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    try {
      const m = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8").match(/^prog_id:\s+(\d+)/m);
      if (m) ids.add(Number(m[1]));
    } catch {
      // fd closed meanwhile
    }
  }
  return [...ids];
}

/** IDs of the maps named `mapName` that daemon `pid`'s programs named `progPrefix`* use. */
function mapsOfPrograms(pid: number, progPrefix: string, mapName: string): number[] {
  const mapIds = new Set<number>();
  for (const id of programIdsOf(pid)) {
    const p = bpftoolJson(["prog", "show", "id", `${id}`]) as { name?: string; map_ids?: number[] };
    if (p.name?.startsWith(progPrefix)) { for (const m of p.map_ids ?? []) mapIds.add(m); }
  }
  return [...mapIds].filter((id) =>
    (bpftoolJson(["map", "show", "id", `${id}`]) as { name?: string }).name === mapName
  );
}

/** The map id of the tcp_buffer tuner's bpfp_stats in daemon `pid`. */
export function tcpBufferStatsMap(pid: number): number {
  const [id] = mapsOfPrograms(pid, "bpfp_tb_", "bpfp_stats");
  if (id === undefined) {
    throw new Error(`daemon ${pid} holds no tcp_buffer program with a bpfp_stats map`);
  }
  return id;
}

/** The bpfp_stats map of every tuner object daemon `pid` loaded. */
export function allStatsMaps(pid: number): number[] {
  return mapsOfPrograms(pid, "", "bpfp_stats");
}

type DumpEntry = {
  key: string[] | number;
  values?: { cpu: number; value: string[] | number }[];
  formatted?: { key: number; values: { cpu: number; value: number }[] };
};

function le(bytes: string[]): number {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(Number(bytes[i]));
  return Number(v);
}

/** Sums each slot over CPUs. */
export function readHookStats(mapId: number): HookStats {
  const dump = bpftoolJson(["map", "dump", "id", `${mapId}`]) as DumpEntry[];
  const out: HookStats = { hits: 0, emitted: 0, suppressed: 0, dropped: 0, skipped: 0, muted: 0 };
  for (const e of dump) {
    const key = e.formatted?.key ?? (Array.isArray(e.key) ? le(e.key) : e.key);
    const slot = SLOTS[key];
    if (!slot) continue;
    const values = e.formatted?.values ??
      (e.values ?? []).map((v) => ({
        cpu: v.cpu,
        value: Array.isArray(v.value) ? le(v.value) : v.value,
      }));
    out[slot] = values.reduce((s, v) => s + Number(v.value), 0);
  }
  return out;
}

/** Each slot summed over several objects' maps. */
export function readAllHookStats(mapIds: number[]): HookStats {
  const out: HookStats = { hits: 0, emitted: 0, suppressed: 0, dropped: 0, skipped: 0, muted: 0 };
  for (const id of mapIds) {
    const s = readHookStats(id);
    for (const k of SLOTS) out[k] += s[k];
  }
  return out;
}

export function statsDelta(a: HookStats, b: HookStats): HookStats {
  const out = { ...b };
  for (const k of SLOTS) out[k] = b[k] - a[k];
  return out;
}
