/**
 * The route_table tuner: grows a namespace's net.ipv6.route.max_size when its IPv6 destination
 * cache nears it, on the kernels that still enforce it: up to Linux 6.2, and only where the stable
 * series did not take 6.3's removal of the check (Debian's 5.10.0-32 and 6.1.0-56 did: their
 * `dst_ops.gc` returns void, and 300 PMTU exceptions fit under a max_size of 64 there, kernel
 * matrix). Elsewhere it is
 * unavailable with the plain reason ("not enforced by this kernel", "no attach point"): in
 * `support`, `query tuners` and the start-up log, never a load failure.
 *
 * bpftune bugs fixed here (bpftune-behaviour.md §2.5, kernel-compat-lessons.md (b)): its
 * fentry/fib6_age is not traceable on many kernels and failed the whole tuner ("could not load
 * skeleton: No such process", issues #81, #146) or, once optional, left it loaded but blind; here
 * every hook is a chain (ip6_dst_gc, then bpftune's fib6_run_gc; fentry then kprobe) and a kernel
 * without any is reported, not loaded. Where max_size limits nothing (6.3+, and the stable kernels
 * with the backport, told apart by BTF) it does not pretend to tune. Growth is bounded by memory (bpftune had no ceiling); the decision re-reads the
 * live value instead of trusting a value computed in BPF.
 */
import type { BpfpEvent } from "../tuning/event.ts";
import { type LearningRate, shiftOf } from "../tuning/learning_rate.ts";
import type { TunerContext, TunerDefinition } from "../tuning/tuner.ts";
import type { HookDecl } from "../kernel/hooks.ts";
import { kernelVersion, memTotalBytes } from "../kernel/memory.ts";
import { netnsKey } from "../kernel/netns.ts";
import { sysctlExists } from "../kernel/sysctl.ts";
import type { BpfObject } from "../libbpf/object.ts";
import { kernelBtf } from "../libbpf/load.ts";
import routeTableObject from "../../dist/bpf/route_table.bpf.o" with { type: "bytes" };
import { contract } from "../../dist/bpf/route_table.contract.ts";
import { configBytes, readPayload } from "../tuning/contract.ts";
import { u32Key } from "../libbpf/map.ts";
import {
  MAX_SIZE,
  maxSizeDecision,
  ROUTE_TABLE_SCENARIOS,
  ROUTE_TABLE_TUNABLES,
  ROUTE_TABLE_TUNER,
  routeMemoryCeiling,
  unavailableReason,
} from "./route_table_rules.ts";

/** Event kinds of bpf/route_table.bpf.c (from its contract). */
export const RT_KIND = contract.kinds;

const RATE_LIMIT_NS = 1_000_000_000n;

const ROUTE_TABLE_HOOKS: HookDecl[] = [{
  name: "dst_gc",
  description: "IPv6 destination cache garbage collection (entries approaching max_size)",
  candidates: [
    { kind: "fentry", target: "ip6_dst_gc", program: "bpfp_rt_gc_fe" },
    { kind: "kprobe", target: "ip6_dst_gc", program: "bpfp_rt_gc_kp" },
    { kind: "fentry", target: "fib6_run_gc", program: "bpfp_rt_fib_fe" },
    { kind: "kprobe", target: "fib6_run_gc", program: "bpfp_rt_fib_kp" },
  ],
}];

export const routeTableTuner: TunerDefinition = {
  name: ROUTE_TABLE_TUNER,
  id: contract.id,
  contract,
  description:
    "grows net.ipv6.route.max_size when the IPv6 destination cache fills up (kernels enforcing it)",
  object: routeTableObject,
  tunables: ROUTE_TABLE_TUNABLES,
  scenarios: [...ROUTE_TABLE_SCENARIOS],
  hooks: ROUTE_TABLE_HOOKS,
  unavailable: () => unavailableReason(kernelVersion(), sysctlExists(MAX_SIZE), dstGcCanRefuse),
  create: (ctx) => new RouteTableTuner(ctx),
};

/** Whether this kernel's dst_alloc() can still refuse an IPv6 dst (null without BTF). */
function dstGcCanRefuse(): boolean | null {
  const returnsVoid = kernelBtf()?.functionPointerReturnsVoid("dst_ops", "gc") ?? null;
  return returnsVoid === null ? null : !returnsVoid;
}

class RouteTableTuner {
  readonly #rate: LearningRate;
  readonly #ceiling = routeMemoryCeiling(memTotalBytes());

  constructor(private readonly ctx: TunerContext) {
    this.#rate = ctx.learningRate as LearningRate;
  }

  configure(obj: BpfObject): void {
    const cfg = configBytes(contract, {
      rl_interval_ns: RATE_LIMIT_NS,
      lr_shift: shiftOf(this.#rate),
    });
    obj.map("bpfp_config").update(u32Key(0), cfg);
  }

  onEvent(ev: BpfpEvent): void {
    if (ev.kind !== RT_KIND.RT_NEAR_FULL) return;
    const p = readPayload(ev.data, contract.payload.dst);
    const netns = netnsKey(ev.netns);
    const live = this.ctx.read(MAX_SIZE, netns);
    if (!live) return;
    if (this.ctx.log.debugEnabled) {
      this.ctx.log.debug(
        `${MAX_SIZE}: ${p.entries} dst entries, max_size ${p.max_size}, gc_thresh ` +
          `${p.gc_thresh} (${ev.count} hits)`,
      );
    }
    const d = maxSizeDecision({
      live,
      entries: Number(p.entries),
      rate: this.#rate,
      ceiling: this.#ceiling,
    });
    this.ctx.apply([d], netns);
  }
}
