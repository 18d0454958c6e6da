/**
 * The ip_frag tuner (bpftune's ip_frag_tuner, bpftune-behaviour.md §2.3): grows a namespace's
 * net.ipv4.ipfrag_high_thresh / net.ipv6.ip6frag_high_thresh when its reassembly memory nears
 * the threshold, and shrinks it while reassembly failures correlate with the growth.
 *
 * Signals: the kernel has no reassembly tracepoint. Where fentry or a kprobe attaches to
 * ip_defrag / ipv6_frag_rcv (bpftune's attach points), the BPF side reports a nearly full fqdir
 * for every namespace. Where neither does (this project's own kernel: fentry EPERM, no kprobes),
 * the tuner polls the watched namespace (the `--netns` one, else the host's): /proc/net/sockstat(6)
 * FRAG memory and the snmp(6) reassembly counters, once a second while fragments arrive, backing
 * off to once every 8 s while none do.
 * `bpfpilot support` and the start-up log name the poll as the hook's fallback.
 *
 * bpftune bugs fixed: the failure-rate division by zero, unbounded growth (64 MiB ceiling, see
 * ip_frag_rules.ts), the correlation records shared with tcp_buffer, and the tuner failing to
 * load with IPv6 disabled (the IPv6 part is optional: logged once and skipped).
 */
import { CorrelationTable } from "../tuning/correlation.ts";
import type { BpfpEvent } from "../tuning/event.ts";
import { type LearningRate, shiftOf } from "../tuning/learning_rate.ts";
import type { TunerContext, TunerDefinition } from "../tuning/tuner.ts";
import type { HookDecl } from "../kernel/hooks.ts";
import { describeNetns, netnsKey } from "../kernel/netns.ts";
import { forgetNetnsKeys } from "../kernel/netns_keyed.ts";
import { counter } from "../kernel/proc/snmp.ts";
import {
  type CounterFilter,
  type NetnsCounters,
  readNetnsCounters,
} from "../kernel/proc/netns_counters.ts";
import ipFragObject from "../../dist/bpf/ip_frag.bpf.o" with { type: "bytes" };
import { contract } from "../../dist/bpf/ip_frag.contract.ts";
import { configBytes, readPayload } from "../tuning/contract.ts";
import { u32Key } from "../libbpf/map.ts";
import {
  failRatePercent,
  FRAG_SYSCTL,
  fragDecision,
  fragNearlyFull,
  IP_FRAG_SCENARIOS,
  IP_FRAG_TUNABLES,
  IP_FRAG_TUNER,
  nextPollDelay,
  POLL_MIN_MS,
} from "./ip_frag_rules.ts";

const KIND = contract.kinds;

const RATE_LIMIT_NS = 1_000_000_000n;
const POLL = "a poll of /proc/net/sockstat FRAG memory and /proc/net/snmp reassembly " +
  "failures (1 Hz while fragments arrive, every 8 s while none do)";

const IP_FRAG_HOOKS: HookDecl[] = [
  {
    name: "frag4",
    description: "IPv4 fragments entering reassembly (fragment memory near ipfrag_high_thresh)",
    optional: true,
    fallback: POLL,
    candidates: [
      { kind: "fentry", target: "ip_defrag", program: "bpfp_if_v4_fe" },
      { kind: "kprobe", target: "ip_defrag", program: "bpfp_if_v4_kp" },
    ],
  },
  {
    name: "frag6",
    description: "IPv6 fragments entering reassembly (fragment memory near ip6frag_high_thresh)",
    optional: true,
    fallback: POLL.replace("sockstat FRAG", "sockstat6 FRAG6").replace("snmp", "snmp6"),
    candidates: [
      { kind: "fentry", target: "ipv6_frag_rcv", program: "bpfp_if_v6_fe" },
      { kind: "kprobe", target: "ipv6_frag_rcv", program: "bpfp_if_v6_kp" },
    ],
  },
];

export const ipFragTuner: TunerDefinition = {
  name: contract.tuner,
  id: contract.id,
  contract,
  description: "grows a namespace's IP reassembly memory threshold when fragments fill it",
  object: ipFragObject,
  tunables: IP_FRAG_TUNABLES,
  scenarios: [...IP_FRAG_SCENARIOS],
  hooks: IP_FRAG_HOOKS,
  create: (ctx) => new IpFragTuner(ctx),
};

type Family = "v4" | "v6";

const FAMILY = {
  v4: {
    sysctl: FRAG_SYSCTL.v4,
    low: FRAG_SYSCTL.v4Low,
    hook: "frag4",
    sockstat: "sockstat",
    proto: "FRAG",
  },
  v6: {
    sysctl: FRAG_SYSCTL.v6,
    low: FRAG_SYSCTL.v6Low,
    hook: "frag6",
    sockstat: "sockstat6",
    proto: "FRAG6",
  },
} as const;

/** Reassembly counters of one family in one namespace (cumulative). */
interface Reasm {
  fails: number;
  timeouts: number;
  reqds: number;
}

/** Only the counters read here are parsed (sockstat is a few lines: whole). */
const REASM_ONLY: CounterFilter = { protos: new Set(["Ip"]), snmp6Prefix: "Ip6Reasm" };

function reasmOf(c: NetnsCounters, family: Family): Reasm | null {
  const get = family === "v4"
    ? (f: string) => counter(c.snmp, "Ip", `Reasm${f}`)
    : (f: string) => c.snmp6?.get(`Ip6Reasm${f}`);
  const fails = get("Fails"), reqds = get("Reqds"), timeouts = get("Timeout") ?? 0;
  return fails === undefined || reqds === undefined ? null : { fails, timeouts, reqds };
}

class IpFragTuner {
  readonly #rate: LearningRate;
  readonly #correlation = new CorrelationTable();
  /** Families whose BPF hook attached: the poll leaves those to the events. */
  #hooked = new Set<Family>();
  /** Per netns: when to poll next and the last delay. */
  #poll = new Map<string, { at: number; delay: number }>();
  /** Last reassembly counters per (netns, family), for rates over an interval. */
  #last = new Map<string, Reasm>();
  /** (netns, sysctl) already reported absent. */
  #absent = new Set<string>();
  #polls = 0;

  constructor(private readonly ctx: TunerContext) {
    this.#rate = ctx.learningRate as LearningRate;
  }

  configure(obj: import("../libbpf/object.ts").BpfObject): void {
    const cfg = configBytes(contract, {
      rl_interval_ns: RATE_LIMIT_NS,
      lr_shift: shiftOf(this.#rate),
    });
    obj.map("bpfp_config").update(u32Key(0), cfg);
  }

  onAttached(hooks: readonly string[]): void {
    for (const f of ["v4", "v6"] as const) if (hooks.includes(FAMILY[f].hook)) this.#hooked.add(f);
  }

  onEvent(ev: BpfpEvent): void {
    const family = ev.kind === KIND.IF_NEAR_FULL_V4
      ? "v4"
      : ev.kind === KIND.IF_NEAR_FULL_V6
      ? "v6"
      : null;
    if (!family) return;
    this.#nearFull(netnsKey(ev.netns), family, readPayload(ev.data, contract.payload.fqdir).memory);
  }

  /**
   * The poll, for families without a hook: fragment memory (sockstat) and the reassembly
   * counters (snmp) of each watched namespace. On loopback and fast links a refused datagram's
   * fragments come and go within one syscall, so memory alone is rarely caught near the
   * threshold: fragments refused other than by timeout (ReasmFails - ReasmTimeout) since the last
   * look count as the threshold being reached too. Once a second while fragments arrive (ReasmReqds
   * moved or memory in use), backing off to every 8 s while none do.
   */
  onTick(): void {
    if (this.#hooked.size === 2) return;
    const now = this.ctx.now();
    for (const netns of this.ctx.watchedNetns()) {
      const p = this.#poll.get(netns);
      if (p && now < p.at) continue;
      // First look: say at once which family's threshold this namespace lacks.
      if (!p) { for (const f of ["v4", "v6"] as const) this.#read(FAMILY[f].sysctl, netns); }
      const polled = (["v4", "v6"] as const).filter((f) => !this.#hooked.has(f));
      const c = readNetnsCounters(
        netns,
        polled.flatMap((f) => [FAMILY[f].sockstat, f === "v4" ? "snmp" : "snmp6"] as const),
        REASM_ONLY,
      );
      this.#polls++;
      let active = false;
      for (const f of polled) {
        const table = f === "v4" ? c.sockstat : c.sockstat6;
        const memory = counter(table, FAMILY[f].proto, "memory") ?? 0;
        const d = this.#delta(netns, f, reasmOf(c, f));
        active ||= memory > 0 || (d?.reqds ?? 0) > 0;
        const refused = d ? Math.max(0, d.fails - d.timeouts) : 0;
        if (memory > 0 || refused > 0) this.#consider(netns, f, memory, refused, d);
      }
      const delay = nextPollDelay(p?.delay ?? POLL_MIN_MS, active);
      this.#poll.set(netns, { at: now + delay, delay });
    }
  }

  onNetnsGone(gone: ReadonlySet<string>): void {
    for (const netns of gone) this.#poll.delete(netns);
    forgetNetnsKeys(this.#last, gone);
    forgetNetnsKeys(this.#absent, gone);
  }

  summary(): string[] {
    if (this.#hooked.size === 2) return [];
    return [
      `# ip_frag: ${this.#polls} polls of /proc/net/sockstat and snmp (no reassembly hook for ` +
      `${["v4", "v6"].filter((f) => !this.#hooked.has(f as Family)).join(", ")})`,
    ];
  }

  #read(sysctl: string, netns: string): number | null {
    const v = this.ctx.read(sysctl, netns)?.[0];
    if (v !== undefined) return v;
    const key = `${netns}\0${sysctl}`;
    if (!this.#absent.has(key)) {
      this.#absent.add(key);
      this.ctx.log.info(
        `not tuning '${sysctl}' in ${describeNetns(netns)}: it does not exist there (IPv6 ` +
          `disabled, or a namespace of another user namespace); the other family is still tuned`,
        { sysctl, netns },
      );
    }
    return null;
  }

  /** Counter increases since the last look at (netns, family); null on the first look. */
  #delta(netns: string, family: Family, now: Reasm | null): Reasm | null {
    if (!now) return null;
    const key = `${netns}\0${family}`;
    const last = this.#last.get(key);
    this.#last.set(key, now);
    if (!last) return null;
    return {
      fails: Math.max(0, now.fails - last.fails),
      timeouts: Math.max(0, now.timeouts - last.timeouts),
      reqds: Math.max(0, now.reqds - last.reqds),
    };
  }

  /** An event from a hook: fragment memory near the threshold in `netns`. */
  #nearFull(netns: string, family: Family, memory: number): void {
    const c = readNetnsCounters(netns, [family === "v4" ? "snmp" : "snmp6"], REASM_ONLY);
    this.#consider(netns, family, memory, 0, this.#delta(netns, family, reasmOf(c, family)));
  }

  #consider(
    netns: string,
    family: Family,
    memory: number,
    refused: number,
    counts: Reasm | null,
  ): void {
    const { sysctl } = FAMILY[family];
    const high = this.#read(sysctl, netns);
    if (high === null) return;
    if (refused === 0 && !fragNearlyFull(memory, high, this.#rate)) return;
    const now = this.ctx.now();
    const failRate = counts ? failRatePercent(counts.fails, counts.reqds) : 0;
    const corr = this.#correlation.get(IP_FRAG_TUNER, netns, sysctl);
    corr.observe(high, failRate, now);
    if (this.ctx.log.debugEnabled) {
      this.ctx.log.debug(
        `${sysctl}: fragment memory ${memory} of ${high} in ${describeNetns(netns)}, ${refused} ` +
          `fragments refused, reassembly failure rate ${failRate} %`,
      );
    }
    const d = fragDecision({
      sysctl,
      high,
      low: this.ctx.read(FAMILY[family].low, netns)?.[0] ?? null,
      memory,
      refused,
      failuresCorrelate: corr.brakes(now),
      rate: this.#rate,
    });
    this.ctx.apply([d], netns);
  }
}
