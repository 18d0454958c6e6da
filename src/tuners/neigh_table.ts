/**
 * The neigh_table tuner: grows gc_thresh1..3 of the ARP (and, with IPv6, ND) table when it nears
 * gc_thresh3 or refuses an entry, within bpftune's ceiling from the device's address prefixes and
 * a memory bound; shrinks them back towards the values found at start once the table stays
 * nearly empty. Decisions are the pure rules of neigh_table_rules.ts against live values.
 *
 * The thresholds exist only in the host namespace and the tables are shared by every namespace:
 * a container's table pressure grows the host's thresholds, and the log says where it came from.
 *
 * bpftune bugs fixed here (bpftune-behaviour.md §2.4, §5.3): the thresholds are written as
 * sysctls through the journal, so all three are recorded and rolled back, and the exit summary
 * shows real before/after values (bpftune used netlink, ignored its ack and restored gc_thresh3
 * only); the device and its prefixes come from each event, not from the first neighbour ever
 * seen; an admin write of any of the ten neighbour sysctls stops the tuner, not just the one
 * written; the kernel's real limit (gc_entries, which leaves permanent entries out) is compared;
 * growth is bounded where the prefixes give no limit; shrinking waits for a sustained empty table
 * and never undercuts the start values; missing IPv6 sysctls leave IPv4 tuned (bpftune #13).
 */
import { sysctlExists } from "../kernel/sysctl.ts";
import type { BpfpEvent } from "../tuning/event.ts";
import { type LearningRate, shiftOf } from "../tuning/learning_rate.ts";
import type { TunerContext, TunerDefinition } from "../tuning/tuner.ts";
import type { AttachKind, HookDecl } from "../kernel/hooks.ts";
import { memTotalBytes } from "../kernel/memory.ts";
import { describeNetns, GLOBAL_NETNS, inNetns, netnsKey } from "../kernel/netns.ts";
import { type AddrPrefix, readAddrPrefixes } from "../kernel/proc/addr_prefixes.ts";
import { parseStatTable, statGauge } from "../kernel/proc/stat_table.ts";
import type { BpfObject } from "../libbpf/object.ts";
import neighTableObject from "../../dist/bpf/neigh_table.bpf.o" with { type: "bytes" };
import { contract } from "../../dist/bpf/neigh_table.contract.ts";
import { configBytes, readPayload } from "../tuning/contract.ts";
import { u32Key } from "../libbpf/map.ts";
import {
  type Decision,
  FAMILIES,
  type FamilyInfo,
  familyOfAf,
  growDecisions,
  isThresholds,
  memoryCeiling,
  NearlyEmptyStreak,
  NEIGH_TABLE_SCENARIOS,
  NEIGH_TABLE_TUNABLES,
  NEIGH_TABLE_TUNER,
  type NeighFamily,
  shrinkDecisions,
  type Thresholds,
} from "./neigh_table_rules.ts";

/** Event kinds of bpf/neigh_table.bpf.c (from its contract). */
export const NT_KIND = contract.kinds;
/** Event flag: the kernel refused a new entry (the table was full). */
const NT_FLAG_ALLOC_FAILED = 1;

const RATE_LIMIT_NS = 1_000_000_000n;
/**
 * The classic tracepoint's copy of gc_thresh3 is refreshed this often (netlink changes); the
 * other kinds read it from the table.
 */
const CONFIG_REFRESH_TICKS = 10;

const NEIGH_TABLE_HOOKS: HookDecl[] = [
  {
    name: "neigh_create",
    description: "neighbour creation (table entries approaching gc_thresh3, or refused)",
    candidates: [
      { kind: "tp_btf", target: "neigh_create", program: "bpfp_nt_cre_btf" },
      { kind: "raw_tp", target: "neigh_create", program: "bpfp_nt_cre_raw" },
      { kind: "tracepoint", target: "neigh/neigh_create", program: "bpfp_nt_cre_tp" },
      { kind: "fentry", target: "__neigh_create", program: "bpfp_nt_cre_fe" },
      { kind: "kprobe", target: "__neigh_create", program: "bpfp_nt_cre_kp" },
    ],
  },
  {
    name: "neigh_release",
    description: "neighbour release (table nearly empty: thresholds may shrink)",
    // Growth works without it; only shrinking needs it.
    optional: true,
    candidates: [
      { kind: "tp_btf", target: "neigh_cleanup_and_release", program: "bpfp_nt_rel_btf" },
      { kind: "raw_tp", target: "neigh_cleanup_and_release", program: "bpfp_nt_rel_raw" },
      { kind: "fentry", target: "neigh_remove_one", program: "bpfp_nt_rel_fe" },
      { kind: "kprobe", target: "neigh_remove_one", program: "bpfp_nt_rel_kp" },
    ],
  },
];

export const neighTableTuner: TunerDefinition = {
  name: NEIGH_TABLE_TUNER,
  id: contract.id,
  contract,
  description: "grows the ARP/ND neighbour table thresholds when the table fills up",
  object: neighTableObject,
  tunables: NEIGH_TABLE_TUNABLES,
  scenarios: [...NEIGH_TABLE_SCENARIOS],
  hooks: NEIGH_TABLE_HOOKS,
  unavailable: () =>
    sysctlExists("net.ipv4.neigh.default.gc_thresh3")
      ? null
      : "the neighbour table thresholds (net.ipv4.neigh.default." +
        "gc_thresh1..3) exist only in the initial network namespace and bpfpilot runs in another " +
        "one: a bpfpilot in the host's namespace tunes them",
  create: (ctx) => new NeighTableTuner(ctx),
};

class NeighTableTuner {
  readonly #rate: LearningRate;
  /** Thresholds found at start, per family present on this kernel: the floor for shrinking. */
  readonly #floor = new Map<NeighFamily, Thresholds>();
  readonly #streak = new Map<NeighFamily, NearlyEmptyStreak>();
  readonly #memoryCeiling = memoryCeiling(memTotalBytes());
  /** bpftune's "can no longer update thresholds" lines already logged. */
  readonly #excessiveLogged = new Set<string>();
  #object: BpfObject | null = null;
  /** Only neigh_create on the classic tracepoint reads gc_thresh3 from the config. */
  #refreshConfig = true;
  #ticks = 0;
  #overrideLogged = false;

  constructor(private readonly ctx: TunerContext) {
    this.#rate = ctx.learningRate as LearningRate;
    for (const fam of Object.values(FAMILIES)) {
      const live = this.#thresholds(fam);
      if (live) {
        this.#floor.set(fam.family, live);
        this.#streak.set(fam.family, new NearlyEmptyStreak());
      } else if (fam.family === "ipv4") {
        throw new Error("net.ipv4.neigh.default.gc_thresh1..3 cannot be read");
      } else {
        ctx.log.info("IPv6 neighbour thresholds absent (IPv6 disabled?): tuning ARP only");
      }
    }
  }

  configure(obj: BpfObject): void {
    this.#object = obj;
    this.#writeConfig();
  }

  onAttached(_hooks: readonly string[], kinds: ReadonlyMap<string, AttachKind>): void {
    this.#refreshConfig = kinds.get("neigh_create") === "tracepoint";
  }

  #writeConfig(): void {
    if (!this.#object) return;
    const t3 = (f: NeighFamily) => this.#floor.has(f) ? this.#thresholds(FAMILIES[f])?.[2] ?? 0 : 0;
    const cfg = configBytes(contract, {
      rl_interval_ns: RATE_LIMIT_NS,
      lr_shift: shiftOf(this.#rate),
      floor_arp: this.#floor.get("ipv4")?.[2] ?? 0,
      floor_nd: this.#floor.get("ipv6")?.[2] ?? 0,
      thresh3_arp: t3("ipv4"),
      thresh3_nd: t3("ipv6"),
    });
    this.#object.map("bpfp_config").update(u32Key(0), cfg);
  }

  #thresholds(fam: FamilyInfo): Thresholds | null {
    const v = fam.thresh.map((s) => this.ctx.read(s, GLOBAL_NETNS)?.[0]);
    return isThresholds(v as number[]) ? v as unknown as Thresholds : null;
  }

  /** The thresholds are host-wide: any admin override in the host (or everywhere) stops us. */
  #overridden(): boolean {
    const off = this.ctx.tunerOverridden(GLOBAL_NETNS);
    if (off && !this.#overrideLogged) {
      this.ctx.log.info(
        "not tuning the neighbour tables: the administrator took over one of their sysctls " +
          "(bpfpilot enable neigh_table resumes)",
      );
    }
    this.#overrideLogged = off;
    return off;
  }

  onEvent(ev: BpfpEvent): void {
    const p = readPayload(ev.data, contract.payload.table);
    const fam = familyOfAf(Number(p.family));
    if (!fam || !this.#floor.has(fam.family)) return;
    if (ev.kind === NT_KIND.NT_NEAR_EMPTY) {
      this.#streak.get(fam.family)!.empty(this.ctx.now());
      return;
    }
    if (ev.kind !== NT_KIND.NT_NEAR_FULL) return;
    this.#streak.get(fam.family)!.reset();
    if (this.#overridden()) return;
    const live = this.#thresholds(fam);
    if (!live) return;
    const dev = p.dev;
    const ifindex = Number(p.ifindex);
    const netns = netnsKey(ev.netns);
    if (this.ctx.log.debugEnabled) {
      this.ctx.log.debug(
        `${fam.table}: ${p.entries} entries, gc_thresh3 ${live[2]} (dev '${dev}', ` +
          `${describeNetns(netns)}, pid ${ev.pid} ${ev.comm}, ${ev.count} hits` +
          `${ev.flags & NT_FLAG_ALLOC_FAILED ? ", an entry was refused" : ""})`,
      );
    }
    const r = growDecisions({
      fam,
      live,
      entries: Number(p.entries),
      allocFailed: (ev.flags & NT_FLAG_ALLOC_FAILED) !== 0,
      rate: this.#rate,
      dev,
      ifindex,
      prefixes: dev ? this.#prefixes(netns, dev, fam.family) : [],
      memoryCeiling: this.#memoryCeiling,
      fromNetns: netns === GLOBAL_NETNS ? null : describeNetns(netns),
    });
    if (r.excessive) {
      const key = `${fam.family}\0${r.ceiling}\0${live[2]}`;
      if (!this.#excessiveLogged.has(key)) {
        this.#excessiveLogged.add(key);
        this.ctx.log.notice(r.excessive, { tuner: NEIGH_TABLE_TUNER, scenario: 1 });
      }
    }
    this.#apply(r.decisions);
  }

  #prefixes(netns: string, dev: string, family: NeighFamily): AddrPrefix[] {
    try {
      return inNetns(netns, () => readAddrPrefixes(dev, family));
    } catch {
      return []; // the namespace is gone: no prefix ceiling, the memory ceiling still holds
    }
  }

  #apply(decisions: Decision[]): void {
    if (this.ctx.apply(decisions, GLOBAL_NETNS)) this.#writeConfig();
  }

  onTick(): void {
    if (this.#refreshConfig && ++this.#ticks % CONFIG_REFRESH_TICKS === 0) this.#writeConfig();
    for (const [family, streak] of this.#streak) {
      if (!streak.active) continue;
      const fam = FAMILIES[family];
      const live = this.#thresholds(fam);
      const entries = tableEntries(fam);
      if (!live || entries === null) continue;
      if (!streak.due(this.ctx.now(), entries, live[2], this.#rate)) continue;
      if (this.#overridden()) continue;
      const decisions = shrinkDecisions({
        fam,
        live,
        entries,
        floor: this.#floor.get(family)!,
        rate: this.#rate,
      });
      if (decisions.length === 0) streak.reset(); // at the floor: nothing left to shrink
      else this.#apply(decisions);
    }
  }
}

/** The table's current size (/proc/net/stat/<table> "entries", host-wide); null if unreadable. */
function tableEntries(fam: FamilyInfo): number | null {
  try {
    const t = parseStatTable(Deno.readTextFileSync(fam.statFile));
    return t ? statGauge(t, "entries") ?? null : null;
  } catch {
    return null;
  }
}
