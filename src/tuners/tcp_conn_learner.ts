/**
 * The tcp_conn learner, pure: per path (network namespace + remote address) and congestion
 * control algorithm, bpftune's reinforcement learner. Each closed connection is a sample; its cost
 * is how much its min RTT exceeds the path's best plus how far its algorithm's best delivery rate
 * falls short of the path's best (both in millionths), folded in with bpftune's
 * `rl_update` (move by |cost - value| >> shift). The choice for the next connections is the
 * algorithm with the lowest value, untried ones counting as 0 (so each is tried first), ties at
 * random; the BPF side explores one connection in 20 at random (epsilon-greedy).
 *
 * Differences from bpftune, on purpose:
 *  - keyed by remote address (and namespace), not by the route's gateway, which made every
 *    on-link peer share one record;
 *  - the table is bounded (least recently used path evicted);
 *  - datacenter-only algorithms (dctcp) are candidates only for a path known to be ECN-clean;
 *  - a connection switched to BBR for loss also counts against the algorithm it started with, so
 *    that algorithm does not stay "untried" (and first in line) forever on a lossy path.
 */

/** bpftune's REMOTE_HOST_MIN_INSTANCES: learn only from the 4th connection to a path on. */
export const MIN_INSTANCES = 4;
/** bpftune's epsilon: one connection in this many gets a random candidate (done in BPF). */
export const EXPLORE_ONE_IN = 20;
/** Switch to BBR when retransmissions exceed segments sent >> this (1/64). */
export const LOSS_SHIFT = 6;
/**
 * Cost charged to the algorithm a connection started with when it had to be switched to BBR for
 * loss: as bad as twice the path's best RTT and no delivery at all.
 */
export const LOSS_COST = 2_000_000;
/** Algorithms that need ECN marking in every queue of the path (data centres only). */
export const DATACENTER_ONLY: ReadonlySet<string> = new Set(["dctcp", "bpf_dctcp", "prague"]);
/** At most this many algorithms fit the BPF side's table. */
export const MAX_ALGORITHMS = 8;

/** Flags of a sample (bpf/tcp_conn.bpf.c TC_F_*). */
export const SAMPLE_FLAG = {
  learned: 1,
  explored: 2,
  forced: 4,
  app: 8,
  advise: 16,
  ecn: 32,
  isBbr: 64,
} as const;

/** One closed connection, as the BPF side reports it. */
export interface ConnSample {
  /** Namespace key (see kernel/netns.ts). */
  netns: string;
  /** Remote address, text. */
  addr: string;
  /** Algorithm at establishment (after any choice). */
  initial: string;
  flags: number;
  minRttUs: number;
  /** Bytes per second in the connection's last delivery-rate sample (0: unknown). */
  rate: number;
  retrans: number;
  segsOut: number;
  /** Connections this sample stands for (the BPF side sends one per path per interval). */
  connections?: number;
}

export interface AlgorithmRecord {
  /** Connections measured with it. */
  count: number;
  /** Of those, how many it was the greedy (best) choice for. */
  greedy: number;
  /** The learned cost (lower is better; 0 = untried or best). */
  metric: number;
  minRttUs: number;
  maxRate: number;
}

export interface PathRecord {
  netns: string;
  addr: string;
  /** Connections seen (closed), sampled or not. */
  instances: number;
  /** Of those, connections sampled. */
  samples: number;
  minRttUs: number;
  maxRate: number;
  /** Sampled connections switched to BBR for loss (or that would have been, in advise mode). */
  forced: number;
  /** Retransmissions and segments sent, summed over the sampled connections. */
  retrans: number;
  segsOut: number;
  /** Final algorithm of each sampled connection, counted. */
  ran: Map<string, number>;
  algorithms: Map<string, AlgorithmRecord>;
  /** What the next connections get; null = the kernel's default (too few connections yet). */
  choice: string | null;
  /** Every queue on the path marks ECN (only then are datacenter-only algorithms candidates). */
  ecnClean: boolean;
}

export interface LearnerOptions {
  /** The kernel's algorithms (tcp_available_congestion_control), in its order. */
  available: string[];
  /** Paths remembered; the least recently used one is forgotten beyond it. */
  capacity: number;
  /** rl_update's shift: 2 = move a quarter of the way (bpftune's default learning rate). */
  shift: number;
  /** [0, 1) uniform; injected so tests are deterministic. */
  random?: () => number;
  minInstances?: number;
}

function isCount(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}

/** bpftune's rl_update: the first sample sets the value, later ones move it by |g-v| >> shift. */
export function rlUpdate(value: number, sample: number, shift: number): number {
  if (value === 0) return sample;
  const step = Math.floor(Math.abs(sample - value) / 2 ** shift);
  return sample > value ? value + step : value - step;
}

/** bpftune's cost: RTT inflation over the path's best plus rate shortfall, in millionths. */
export function connectionCost(
  c: { minRttUs: number; algMaxRate: number },
  path: { minRttUs: number; maxRate: number },
): number {
  const rtt = path.minRttUs > 0 ? ((c.minRttUs - path.minRttUs) * 1e6) / path.minRttUs : 0;
  const rate = path.maxRate > 0 ? ((path.maxRate - c.algMaxRate) * 1e6) / path.maxRate : 0;
  return Math.floor(Math.max(0, rtt) + Math.max(0, rate));
}

/**
 * The algorithms worth choosing from: those the kernel offers, without datacenter-only ones
 * unless the path is ECN-clean, at most MAX_ALGORITHMS (cubic, bbr, reno kept first).
 */
export function candidates(available: string[], ecnClean: boolean): string[] {
  const usable = available.filter((a) => ecnClean || !DATACENTER_ONLY.has(a));
  const first = ["cubic", "bbr", "reno"].filter((a) => usable.includes(a));
  return [...first, ...usable.filter((a) => !first.includes(a))].slice(0, MAX_ALGORITHMS);
}

/** The algorithm a connection ran with at its end (what its sample measures). */
export function ranWith(s: ConnSample): string {
  const switched = (s.flags & SAMPLE_FLAG.forced) !== 0 && (s.flags & SAMPLE_FLAG.advise) === 0;
  return switched ? "bbr" : s.initial;
}

export interface Observation {
  path: PathRecord;
  /** The path's choice changed (write it to the BPF side). */
  changed: boolean;
  /** A path forgotten to make room (remove it from the BPF side). */
  evicted: PathRecord | null;
}

export class CongestionLearner {
  readonly #paths = new Map<string, PathRecord>();
  readonly #random: () => number;
  readonly #minInstances: number;

  constructor(readonly opts: LearnerOptions) {
    this.#random = opts.random ?? Math.random;
    this.#minInstances = opts.minInstances ?? MIN_INSTANCES;
  }

  static key(netns: string, addr: string): string {
    return `${netns}|${addr}`;
  }

  get size(): number {
    return this.#paths.size;
  }

  /** Paths, most recently used last. */
  paths(): PathRecord[] {
    return [...this.#paths.values()];
  }

  candidatesFor(path: PathRecord): string[] {
    return candidates(this.opts.available, path.ecnClean);
  }

  observe(s: ConnSample): Observation {
    const key = CongestionLearner.key(s.netns, s.addr);
    let path = this.#paths.get(key);
    let evicted: PathRecord | null = null;
    if (path) this.#paths.delete(key); // re-inserted below: most recently used
    else {
      path = {
        netns: s.netns,
        addr: s.addr,
        instances: 0,
        samples: 0,
        minRttUs: 0,
        maxRate: 0,
        forced: 0,
        retrans: 0,
        segsOut: 0,
        ran: new Map(),
        algorithms: new Map(),
        choice: null,
        ecnClean: false,
      };
      if (this.#paths.size >= this.opts.capacity) {
        const oldest = this.#paths.keys().next().value!;
        evicted = this.#paths.get(oldest)!;
        this.#paths.delete(oldest);
      }
    }
    this.#paths.set(key, path);
    path.instances += Math.max(1, s.connections ?? 1);
    path.samples++;
    const ran = ranWith(s);
    path.ran.set(ran, (path.ran.get(ran) ?? 0) + 1);
    if (s.flags & SAMPLE_FLAG.forced) path.forced++;
    if (isCount(s.retrans) && isCount(s.segsOut)) {
      path.retrans += s.retrans;
      path.segsOut += s.segsOut;
    }

    const usable = this.candidatesFor(path);
    if (usable.includes(ran)) this.#learn(path, ran, s);
    if (ran !== s.initial && usable.includes(s.initial)) {
      // It had to be rescued by BBR: charge the algorithm it started with.
      const a = this.#algorithm(path, s.initial);
      a.metric = rlUpdate(a.metric, Math.max(LOSS_COST, a.metric), this.opts.shift);
      a.count++;
    }
    const before = path.choice;
    path.choice = this.choose(path);
    return { path, changed: path.choice !== before, evicted };
  }

  /** The greedy choice: lowest value among candidates, untried = 0, ties at random. */
  choose(path: PathRecord): string | null {
    if (path.instances < this.#minInstances) return null;
    const usable = this.candidatesFor(path);
    if (usable.length === 0) return null;
    const value = (a: string) => path.algorithms.get(a)?.metric ?? 0;
    const best = Math.min(...usable.map(value));
    const tied = usable.filter((a) => value(a) === best);
    return tied[Math.min(tied.length - 1, Math.floor(this.#random() * tied.length))];
  }

  #algorithm(path: PathRecord, name: string): AlgorithmRecord {
    let a = path.algorithms.get(name);
    if (!a) {
      a = { count: 0, greedy: 0, metric: 0, minRttUs: 0, maxRate: 0 };
      path.algorithms.set(name, a);
    }
    return a;
  }

  #learn(path: PathRecord, name: string, s: ConnSample): void {
    const a = this.#algorithm(path, name);
    if (s.minRttUs > 0) {
      if (a.minRttUs === 0 || s.minRttUs < a.minRttUs) a.minRttUs = s.minRttUs;
      if (path.minRttUs === 0 || s.minRttUs < path.minRttUs) path.minRttUs = s.minRttUs;
    }
    if (s.rate > a.maxRate) a.maxRate = s.rate;
    // bpftune feeds the path's best rate with the algorithm's best, not the connection's.
    if (a.maxRate > path.maxRate) path.maxRate = a.maxRate;
    const greedy = [...path.algorithms].every(([n, o]) => n === name || o.metric >= a.metric);
    const cost = connectionCost({ minRttUs: s.minRttUs, algMaxRate: a.maxRate }, path);
    a.metric = rlUpdate(a.metric, cost, this.opts.shift);
    a.count++;
    if (greedy) a.greedy++;
  }
}

/** Bytes per second from the kernel's rate sample: delivered packets × MSS over the interval. */
export function deliveryRate(delivered: number, intervalUs: number, mss: number): number {
  if (intervalUs <= 0) return 0;
  return Math.floor((delivered * mss * 1e6) / intervalUs);
}

/** 16 bytes (IPv4 as ::ffff:a.b.c.d) as text. */
export function formatAddress(b: Uint8Array): string {
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  // The longest run of two or more zero groups becomes "::" (RFC 5952).
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${hex.slice(bestAt + bestLen).join(":")}`;
}
