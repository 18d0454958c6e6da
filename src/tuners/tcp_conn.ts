/**
 * The tcp_conn tuner (bpftune's tcp_conn_tuner.so): per path, learns which congestion control
 * gives the lowest RTT inflation and the highest delivery rate, and gives new connections that
 * algorithm from a sockops program attached to the `-c` cgroup (bpf/tcp_conn.bpf.c); switches a
 * connection to BBR when it retransmits more than 1/64 of the segments it sent. The learning is
 * the pure tcp_conn_learner.ts; this file moves samples in and choices out.
 *
 * bpftune bugs fixed here (bpftune-behaviour.md §2.2, §5.3):
 *  - learning is keyed by remote address and namespace, not by the route's gateway (which made
 *    every on-link peer share one record), in a bounded LRU table;
 *  - dctcp and other datacenter-only algorithms are never chosen for a path not known to be
 *    ECN-clean (bpftune explored dctcp/htcp on Internet paths);
 *  - no sysctl is written: bpf_setsockopt needs no entry in tcp_allowed_congestion_control, and
 *    no modules are loaded (bpftune ran `modprobe` through system() and rewrote the allowed list);
 *  - `summary` reads counters and changes none (bpftune added the metric counts to the scenario
 *    counter on every call, so each query inflated them);
 *  - an application's own TCP_CONGESTION choice is left alone (bpftune overrode it);
 *  - samples reach userspace rate-limited per path, so a busy path cannot flood the daemon.
 */
import {
  ANY_NETNS,
  describeNetns,
  GLOBAL_NETNS,
  netnsKey,
  ownNetnsInum,
  parseNetnsKey,
} from "../kernel/netns.ts";
import { availableCongestionControl } from "../kernel/congestion.ts";
import type { BpfObject } from "../libbpf/object.ts";
import { type BpfMap, u32Key } from "../libbpf/map.ts";
import type { BpfpEvent } from "../tuning/event.ts";
import { configBytes, readPayload } from "../tuning/contract.ts";
import { type LearningRate, shiftOf } from "../tuning/learning_rate.ts";
import type {
  ConnectionAdvice,
  TunerContext,
  TunerDefinition,
  TunerMetric,
  TunerTable,
} from "../tuning/tuner.ts";
import { CONGESTION_SETTING, pathAdvice } from "./tcp_conn_advice.ts";
import tcpConnObject from "../../dist/bpf/tcp_conn.bpf.o" with { type: "bytes" };
import { contract } from "../../dist/bpf/tcp_conn.contract.ts";
import {
  candidates,
  CongestionLearner,
  type ConnSample,
  deliveryRate,
  EXPLORE_ONE_IN,
  formatAddress,
  LOSS_SHIFT,
  MAX_ALGORITHMS,
  type PathRecord,
  SAMPLE_FLAG,
} from "./tcp_conn_learner.ts";

export const TCP_CONN_TUNER = "tcp_conn";

const SAMPLE = contract.payload.sample;
/** bpf/tcp_conn.bpf.c: config flag TC_CFG_ADVISE, "no bbr" index TC_NO_ALG. */
const CFG_ADVISE = 1;
const NO_ALG = 0xff;

/** tc_counts slots. */
const COUNT = {
  chosen: 0,
  forced: 8,
  explored: 9,
  app: 10,
  unknown: 11,
  failed: 12,
  retransmits: 13,
  overLossThreshold: 14,
  callbackRefused: 15,
  handsOff: 16,
} as const;

/** Paths remembered: the BPF map's size, so both forget the same ones. */
export const PATH_CAPACITY = 4096;
/** One sample per path per 10 ms at most reaches userspace. */
const SAMPLE_INTERVAL_NS = 10_000_000n;

/**
 * The administrator's write to any of these takes tcp_conn over (bpftune §2.11): connections in
 * that namespace (every namespace, for the host-wide ones) are left alone until `enable`.
 */
export const TCP_CONN_OVERRIDDEN_BY = [
  "net.ipv4.tcp_congestion_control",
  "net.ipv4.tcp_allowed_congestion_control",
  "net.ipv4.tcp_available_congestion_control",
  "net.ipv4.tcp_thin_linear_timeouts",
] as const;
/** Of those, the ones the kernel keeps once for the host, whichever namespace writes them. */
const HOST_WIDE: ReadonlySet<string> = new Set([
  "net.ipv4.tcp_allowed_congestion_control",
  "net.ipv4.tcp_available_congestion_control",
]);

/** A namespace key as the BPF side names it: its inode; 0 (tc_hands_off) = every namespace. */
export function netnsInumOfKey(key: string): bigint {
  if (key === ANY_NETNS) return 0n;
  return parseNetnsKey(key) ?? ownNetnsInum();
}

/** The tc_hands_off keys for the tuner's overrides (a host-wide sysctl's: every namespace). */
export function handsOffKeys(overrides: readonly { netns: string; sysctl: string }[]): bigint[] {
  const keys = new Set<bigint>();
  for (const o of overrides) keys.add(HOST_WIDE.has(o.sysctl) ? 0n : netnsInumOfKey(o.netns));
  return [...keys];
}

export const TCP_CONN_SCENARIOS = [{
  id: 0,
  name: "specify TCP congestion control algorithm",
  description: "To optimize TCP performance, a TCP congestion control algorithm was chosen to " +
    "mimimize round-trip time and maximize delivery rate.",
}];

export const tcpConnTuner: TunerDefinition = {
  name: TCP_CONN_TUNER,
  id: contract.id,
  description: "chooses each connection's congestion control per path (sockops)",
  object: tcpConnObject,
  contract,
  tunables: [],
  tunesConnections: true,
  overriddenBy: TCP_CONN_OVERRIDDEN_BY,
  scenarios: TCP_CONN_SCENARIOS,
  hooks: [{
    name: "sockops",
    description: "TCP connections of the -c cgroup: established, retransmitting, closing",
    candidates: [{ kind: "cgroup", target: "sockops", program: "bpfp_tc_sockops" }],
  }],
  create: (ctx) => new TcpConnTuner(ctx),
};

/** The sample in an event's payload. */
export function decodeSample(ev: BpfpEvent): ConnSample {
  const p = readPayload(ev.data, SAMPLE);
  return {
    netns: netnsKey(ev.netns),
    addr: formatAddress(addressBytes(ev)),
    initial: p.initial,
    flags: p.flags,
    minRttUs: p.min_rtt_us,
    rate: deliveryRate(p.rate_delivered, p.rate_interval_us, p.mss),
    retrans: p.total_retrans,
    segsOut: p.segs_out,
    connections: Math.max(1, ev.count),
  };
}

/** The sample's remote address as the kernel stores it (16 bytes, network order). */
function addressBytes(ev: BpfpEvent): Uint8Array {
  return ev.data.subarray(SAMPLE.addr.offset, SAMPLE.addr.offset + 16);
}

/** The BPF map key of a path: netns inode (u64) and the 16-byte address. */
export function pathKey(netnsInum: bigint, addr16: Uint8Array): Uint8Array {
  const k = new Uint8Array(24);
  new DataView(k.buffer).setBigUint64(0, netnsInum, true);
  k.set(addr16, 8);
  return k;
}

/** Summary lines as bpftune prints them: a header, then one line per algorithm. */
export function choiceSummary(counts: Map<string, number>, forced: number): string[] {
  const col = (a: string, b: string) =>
    `# Summary: tcp_conn_tuner: ${a.padStart(20)} ${b.padStart(20)}`;
  const out = [col("CongAlg", "Count")];
  for (const [alg, n] of counts) out.push(col(alg, String(n)));
  if (forced > 0) {
    out.push(
      `# Summary: tcp_conn_tuner: switched ${forced} connections to bbr as they retransmitted ` +
        `more than 1/64 of the segments they sent`,
    );
  }
  return out;
}

/** The BPF side's counters (tc_counts), summed over CPUs. */
interface ConnCounts {
  /** Connections given each algorithm (choices and switches to bbr). */
  chosen: Map<string, number>;
  forced: number;
  explored: number;
  app: number;
  retransmits: number;
  overLossThreshold: number;
  callbackRefused: number;
  handsOff: number;
}

class TcpConnTuner {
  readonly #learner: CongestionLearner;
  /** Algorithm names in tc_algs order (BPF indexes them). */
  readonly #algorithms: string[];
  /** Raw keys of the paths written to the BPF map, by learner key. */
  readonly #keys = new Map<string, Uint8Array>();
  /** Namespaces (inodes, 0 = every one) in tc_hands_off. */
  #handsOff = new Set<bigint>();
  #object: BpfObject | null = null;
  #handsOffMap: BpfMap | undefined;
  /** ctx.overridesVersion() when tc_hands_off was last synced (undefined: sync next time). */
  #handsOffVersion: number | undefined;

  constructor(private readonly ctx: TunerContext) {
    let available: string[] = [];
    try {
      available = availableCongestionControl();
    } catch (e) {
      ctx.log.warn(`tcp_conn: ${(e as Error).message}; leaving congestion control alone`);
    }
    // Datacenter-only ones stay in the name table (an ECN-clean path may get them), after the
    // general-purpose candidates.
    const general = candidates(available, false);
    this.#algorithms = [
      ...general,
      ...candidates(available, true)
        .filter((a) => !general.includes(a)),
    ].slice(0, MAX_ALGORITHMS);
    this.#learner = new CongestionLearner({
      available: this.#algorithms,
      capacity: PATH_CAPACITY,
      shift: shiftOf(ctx.learningRate as LearningRate),
    });
    ctx.log.debug(`tcp_conn: candidates ${this.#algorithms.join(", ") || "none"}`);
  }

  configure(obj: BpfObject): void {
    this.#object = obj;
    this.#handsOffMap = undefined;
    this.#handsOffVersion = undefined;
    const names = obj.map("tc_algs");
    this.#algorithms.forEach((name, i) => {
      const v = new Uint8Array(16);
      v.set(new TextEncoder().encode(name).subarray(0, 15));
      names.update(u32Key(i), v);
    });
    this.#writeConfig(obj);
    this.#syncHandsOff();
  }

  /** The config map; hands_off tells the BPF side whether tc_hands_off is worth a lookup. */
  #writeConfig(obj: BpfObject): void {
    const bbr = this.#algorithms.indexOf("bbr");
    obj.map("bpfp_config").update(
      u32Key(0),
      configBytes(contract, {
        rl_interval_ns: SAMPLE_INTERVAL_NS,
        flags: this.ctx.advise ? CFG_ADVISE : 0,
        bbr: bbr < 0 ? NO_ALG : bbr,
        explore: EXPLORE_ONE_IN,
        loss_shift: LOSS_SHIFT,
        only_netns: this.ctx.onlyNetns ? netnsInumOfKey(this.ctx.onlyNetns) : 0n,
        hands_off: this.#handsOff.size,
      }),
    );
  }

  onTick(): void {
    this.#syncHandsOff();
  }

  /** tc_hands_off follows the journal's overrides (admin writes, `disable`, `enable`). */
  #syncHandsOff(): void {
    // Found once: this runs every tick.
    const map = this.#handsOffMap ??= this.#object?.map("tc_hands_off");
    if (!map || !this.ctx.takenOverIn) return;
    // Copying the journal's overrides every second cost ~260 us a tick: only when they moved.
    // Read before them: a change that lands between the two is synced again next tick.
    const version = this.ctx.overridesVersion?.();
    if (version !== undefined && version === this.#handsOffVersion) return;
    const want = new Set(handsOffKeys(this.ctx.takenOverIn()));
    const key = (inum: bigint) => {
      const k = new Uint8Array(8);
      new DataView(k.buffer).setBigUint64(0, inum, true);
      return k;
    };
    const where = (inum: bigint) => inum === 0n ? "every ns" : describeNetns(netnsKey(inum));
    try {
      for (const inum of want) {
        if (this.#handsOff.has(inum)) continue;
        map.update(key(inum), new Uint8Array([1]));
        this.ctx.log.info(
          `tcp_conn: leaving new connections' congestion control alone in ${where(inum)} ` +
            `(the administrator took it over)`,
        );
      }
      for (const inum of this.#handsOff) {
        if (want.has(inum)) continue;
        map.delete(key(inum));
        this.ctx.log.info(`tcp_conn: choosing congestion control again in ${where(inum)}`);
      }
      const resize = want.size !== this.#handsOff.size;
      this.#handsOff = want;
      if (resize) this.#writeConfig(this.#object!);
      this.#handsOffVersion = version; // not after a failure: tried again next tick
    } catch (e) {
      this.ctx.log.warn(
        `tcp_conn: cannot update the namespaces left alone: ${(e as Error).message}`,
      );
    }
  }

  onEvent(ev: BpfpEvent): void {
    if (ev.kind !== contract.kinds.TC_SAMPLE) return;
    const s = decodeSample(ev);
    const { path, changed, evicted } = this.#learner.observe(s);
    if (evicted) this.#forget(evicted);
    if (!changed) return;
    const key = CongestionLearner.key(path.netns, path.addr);
    const raw = this.#keys.get(key) ?? pathKey(ev.netns, addressBytes(ev));
    this.#keys.set(key, raw);
    this.#writeChoice(raw, path);
  }

  #writeChoice(raw: Uint8Array, path: PathRecord): void {
    const paths = this.#object?.map("tc_paths");
    if (!paths) return;
    const alg = path.choice === null ? -1 : this.#algorithms.indexOf(path.choice);
    try {
      if (alg < 0) {
        paths.delete(raw);
        return;
      }
      let mask = 0;
      for (const c of this.#learner.candidatesFor(path)) {
        const i = this.#algorithms.indexOf(c);
        if (i >= 0) mask |= 1 << i;
      }
      const v = new Uint8Array(8);
      const dv = new DataView(v.buffer);
      dv.setUint32(0, alg, true);
      dv.setUint32(4, mask, true);
      paths.update(raw, v);
      if (this.ctx.log.debugEnabled) {
        this.ctx.log.debug(
          `tcp_conn: ${describePath(path)}: ${this.ctx.advise ? "would choose" : "choosing"} ` +
            `${path.choice} after ${path.instances} connections`,
        );
      }
    } catch (e) {
      this.ctx.log.warn(
        `tcp_conn: cannot record the choice for ${path.addr}: ${(e as Error).message}`,
      );
    }
  }

  #forget(path: PathRecord): void {
    const key = CongestionLearner.key(path.netns, path.addr);
    const raw = this.#keys.get(key);
    this.#keys.delete(key);
    if (!raw) return;
    try {
      this.#object?.map("tc_paths").delete(raw);
    } catch {
      // already evicted by the kernel's LRU
    }
  }

  #counts(): ConnCounts {
    const c: ConnCounts = {
      chosen: new Map(),
      forced: 0,
      explored: 0,
      app: 0,
      retransmits: 0,
      overLossThreshold: 0,
      callbackRefused: 0,
      handsOff: 0,
    };
    try {
      const m = this.#object?.map("tc_counts");
      if (m) {
        const at = (slot: number) => Number(m.sumU64(u32Key(slot)));
        this.#algorithms.forEach((a, i) => c.chosen.set(a, at(COUNT.chosen + i)));
        c.forced = at(COUNT.forced);
        c.explored = at(COUNT.explored);
        c.app = at(COUNT.app);
        c.retransmits = at(COUNT.retransmits);
        c.overLossThreshold = at(COUNT.overLossThreshold);
        c.callbackRefused = at(COUNT.callbackRefused);
        c.handsOff = at(COUNT.handsOff);
      }
    } catch {
      // object closed: nothing to count
    }
    return c;
  }

  summary(): string[] {
    const c = this.#counts();
    const out = choiceSummary(c.chosen, c.forced);
    if (this.ctx.advise) {
      out.push("# (advise mode: no connection's congestion control was changed)");
    }
    for (const p of this.#learner.paths()) this.ctx.log.debug(`tcp_conn: ${describePathRow(p)}`);
    return out;
  }

  /** Per path, what the loss rule and the learner would give its connections (for `audit`). */
  connectionAdvice(): ConnectionAdvice[] {
    return this.#learner.paths().reverse().flatMap((p) => {
      const a = pathAdvice(p, this.#learner.candidatesFor(p));
      if (a === null) return [];
      return [{
        ...a,
        scenario: TCP_CONN_SCENARIOS[0].name,
        setting: CONGESTION_SETTING,
        netns: p.netns,
        remote: p.addr,
        connections: p.instances,
      }];
    });
  }

  tables(): TunerTable[] {
    const rows = this.#learner.paths().reverse().map((p) => {
      const chosen = p.choice ?? "(default)";
      const a = p.choice ? p.algorithms.get(p.choice) : undefined;
      return {
        ...(p.netns === GLOBAL_NETNS ? {} : { netns: p.netns }),
        address: p.addr,
        algorithm: chosen,
        metric: a?.metric ?? 0,
        count: p.instances,
        samples: p.samples,
        greedy: a?.greedy ?? 0,
        forced: p.forced,
        minRttUs: p.minRttUs,
        maxRateBytesPerSec: p.maxRate,
        ran: Object.fromEntries(p.ran),
        algorithms: Object.fromEntries(
          [...p.algorithms].map(([n, r]) => [n, { metric: r.metric, count: r.count }]),
        ),
      };
    });
    return [{
      name: "paths",
      columns: ["netns", "address", "algorithm", "metric", "count", "forced", "minRttUs"],
      rows,
    }];
  }

  metrics(): TunerMetric[] {
    const c = this.#counts();
    const m = (
      name: string,
      type: TunerMetric["type"],
      help: string,
      value: number,
      labels = {},
    ) => ({ name: `tcp_conn_${name}`, type, help, labels, value });
    return [
      ...[...c.chosen].map(([algorithm, n]) =>
        m(
          "choices",
          "counter",
          "Connections given a congestion control algorithm (choices and switches to bbr).",
          n,
          { algorithm },
        )
      ),
      m(
        "switched_to_bbr",
        "counter",
        "Connections switched to bbr as they retransmitted more than 1/64 of the segments sent.",
        c.forced,
      ),
      m("explored", "counter", "Connections given a random candidate (exploration).", c.explored),
      m(
        "retransmits",
        "counter",
        "Retransmissions seen by the loss check (connections not yet on bbr).",
        c.retransmits,
      ),
      m(
        "over_threshold",
        "counter",
        "Of those, retransmissions that found the connection over 1/64 of its segments sent.",
        c.overLossThreshold,
      ),
      m(
        "no_callbacks",
        "counter",
        "Connections whose state or retransmission callbacks the kernel would not enable.",
        c.callbackRefused,
      ),
      m(
        "left_alone",
        "counter",
        "Connections left alone: the administrator took tcp_conn over there, or not --netns's.",
        c.handsOff,
      ),
      m(
        "paths",
        "gauge",
        "Paths (namespace, remote address) the learner remembers.",
        this.#learner.size,
      ),
    ];
  }
}

function describePath(p: PathRecord): string {
  return p.netns === GLOBAL_NETNS ? p.addr : `${p.addr} (netns ${p.netns})`;
}

function describePathRow(p: PathRecord): string {
  const algs = [...p.algorithms].map(([n, r]) => `${n} metric ${r.metric} count ${r.count}`);
  return `${describePath(p)}: ${p.choice ?? "default"}; ${p.instances} connections, ` +
    `${p.forced} switched to bbr, min RTT ${p.minRttUs} us, max rate ${p.maxRate} B/s; ` +
    algs.join(", ");
}

export { SAMPLE_FLAG };
