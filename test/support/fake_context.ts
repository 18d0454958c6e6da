/**
 * A TunerContext with no daemon behind it: sysctls in a map, proposals recorded (and, when
 * accepted, written to the map), a settable clock. For unit tests of a tuner's glue: events in,
 * proposals out.
 */
import { applyDecisions } from "../../src/tuning/context.ts";
import type { Proposal } from "../../src/tuning/proposal.ts";
import type {
  LogLike,
  TunerContext,
  TunerDefinition,
  TunerInstance,
} from "../../src/tuning/tuner.ts";
import type { BpfObject } from "../../src/libbpf/object.ts";
import { type BpfpEvent, decodeEvent, encodeEvent } from "../../src/tuning/event.ts";

/** A LogLike that records each line as "<E|W|N|I> message" (debug lines dropped). */
export function recordingLog(): { log: LogLike; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (m: string) => void lines.push(`${level} ${m}`);
  return {
    lines,
    log: {
      debugEnabled: false,
      error: at("E"),
      warn: at("W"),
      notice: at("N"),
      info: at("I"),
      debug: () => {},
    },
  };
}

export interface Override {
  netns: string;
  sysctl: string;
  tuner: string;
  pid: number;
  comm: string;
}

export class FakeTunerContext implements TunerContext {
  readonly values = new Map<string, number[]>();
  readonly proposals: Proposal[] = [];
  readonly ceilings: { sysctl: string; netns: string; value: number[]; ceiling: number }[] = [];
  /** needsMore() calls: what the daemon would mute the event's key up to. */
  readonly needs: { sysctl: string; netns: string; need: number }[] = [];
  readonly overrides: Override[] = [];
  readonly lines: { level: string; msg: string }[] = [];
  readonly log: LogLike;
  learningRate = 4;
  advise = false;
  clock = 0;
  /** Whether a proposal goes through (the daemon's journal, gate and write); default yes. */
  accept: (p: Proposal) => boolean = () => true;
  /**
   * For a proposal accept() refused: when the daemon's cool-down would end (what
   * coolingDownUntil() then answers), or null: refused for another reason. Default null.
   */
  coolDown: (p: Proposal) => number | null = () => null;
  #coolingDown: { key: string; until: number } | null = null;
  /** sysctl -> tuners that manage it. */
  managed: Record<string, string[]> = {};
  /** "sysctl\0values" of bpfpilot's own recent writes. */
  readonly ownWrites = new Set<string>();
  /** Faults a test injects (BPFPILOT_FAULT_INJECT's names). */
  readonly faults = new Set<string>();
  /** Namespaces where the admin took one of this tuner's sysctls over. */
  readonly tunerOverrides = new Set<string>();
  /** What takenOverIn() answers: the journal's overrides of this tuner (set: a new version). */
  get takenOver(): { netns: string; sysctl: string }[] {
    return this.#takenOver;
  }
  set takenOver(list: { netns: string; sysctl: string }[]) {
    this.#takenOver = list;
    this.#overridesVersion++;
  }
  #takenOver: { netns: string; sysctl: string }[] = [];
  #overridesVersion = 0;
  /** How many times takenOverIn() was asked. */
  takenOverAsked = 0;
  /** The `--netns` namespace (key), or null. */
  onlyNetns: string | null = null;

  constructor(readonly tuner: string) {
    const at = (level: string) => (msg: string) => void this.lines.push({ level, msg });
    this.log = {
      debugEnabled: true,
      error: at("error"),
      warn: at("warn"),
      notice: at("notice"),
      info: at("info"),
      debug: at("debug"),
    };
  }

  set(sysctl: string, values: number[], netns = "global"): this {
    this.values.set(`${netns}\0${sysctl}`, [...values]);
    return this;
  }

  /** Each read or readMany: the namespace visited and what was read there, in order. */
  readonly visits: { netns: string; sysctls: string[] }[] = [];

  read(sysctl: string, netns: string): number[] | null {
    this.visits.push({ netns, sysctls: [sysctl] });
    return this.#value(sysctl, netns);
  }

  readMany(sysctls: readonly string[], netns: string): (number[] | null)[] {
    this.visits.push({ netns, sysctls: [...sysctls] });
    return sysctls.map((s) => this.#value(s, netns));
  }

  #value(sysctl: string, netns: string): number[] | null {
    const v = this.values.get(`${netns}\0${sysctl}`);
    return v ? [...v] : null;
  }

  propose(p: Proposal): boolean {
    this.proposals.push(p);
    const ok = this.accept(p);
    if (ok && !this.advise) this.set(p.sysctl, p.to, p.netns);
    const until = ok ? null : this.coolDown(p);
    this.#coolingDown = until === null ? null : { key: `${p.netns}\0${p.sysctl}`, until };
    return ok;
  }

  coolingDownUntil(sysctl: string, netns: string): number | null {
    const c = this.#coolingDown;
    return c !== null && c.key === `${netns}\0${sysctl}` ? c.until : null;
  }

  apply(decisions: Parameters<TunerContext["apply"]>[0], netns: string): boolean {
    return applyDecisions(this, this.tuner, decisions, netns);
  }

  atCeiling(sysctl: string, netns: string, value: number[], ceiling: number): void {
    this.ceilings.push({ sysctl, netns, value, ceiling });
  }

  needsMore(sysctl: string, netns: string, need: number): void {
    this.needs.push({ sysctl, netns, need });
  }

  /** What watchedNetns() answers (the `--netns` namespace, else the host's). */
  watched: string[] = ["global"];

  watchedNetns(): string[] {
    return [...this.watched];
  }

  now(): number {
    return this.clock;
  }

  faultInjected(fault: string): boolean {
    return this.faults.has(fault);
  }

  managers(sysctl: string): string[] {
    return this.managed[sysctl] ?? [];
  }

  managedSysctls(): string[] {
    return Object.keys(this.managed);
  }

  isOwnRecentWrite(sysctl: string, values: string): boolean {
    return this.ownWrites.has(`${sysctl}\0${values}`);
  }

  tunerOverridden(netns: string): boolean {
    return this.tunerOverrides.has(netns) || this.tunerOverrides.has("any");
  }

  takenOverIn(): { netns: string; sysctl: string }[] {
    this.takenOverAsked++;
    return this.takenOver.map((o) => ({ ...o }));
  }

  overridesVersion(): number {
    return this.#overridesVersion;
  }

  markOverride(o: Override): void {
    this.overrides.push(o);
  }
}

/** A BPF object stand-in that records what configure() writes to its maps. */
export function fakeObject(): { object: BpfObject; writes: Map<string, Uint8Array> } {
  const writes = new Map<string, Uint8Array>();
  const object = {
    map: (name: string) => ({
      update: (_key: Uint8Array, value: Uint8Array) => void writes.set(name, value.slice()),
    }),
  } as unknown as BpfObject;
  return { object, writes };
}

/** Runs a tuner definition against a fake context. */
export function startTuner(
  def: TunerDefinition,
  ctx = new FakeTunerContext(def.name),
): { ctx: FakeTunerContext; tuner: TunerInstance; event(e: Partial<BpfpEvent>): void } {
  const tuner = def.create(ctx);
  return {
    ctx,
    tuner,
    event: (e) => tuner.onEvent?.(decodeEvent(encodeEvent({ tuner: def.id, ...e }))),
  };
}
