/**
 * The tuner contract. A tuner is one `src/tuners/<name>.ts` (this definition) plus one
 * `bpf/<name>.bpf.c`: it declares its tunables (each with its value domain), scenarios, BPF object
 * and hooks, and supplies handlers. The daemon does everything else: probing, loading, attaching,
 * the event loop, the journal, admin-override detection, advise mode, logging and the exit summary.
 * See docs/adding-a-tuner.md.
 */
import type { LogFields } from "../log/logger.ts";
import type { BpfObject } from "../libbpf/object.ts";
import type { AttachKind, HookDecl } from "../kernel/hooks.ts";
import type { BpfpEvent } from "./event.ts";
import type { ValueDomain } from "./domain.ts";
import type { Decision, Proposal } from "./proposal.ts";
import type { Contract } from "./contract.ts";

export interface TunableDecl {
  /** Dotted sysctl name. */
  sysctl: string;
  /** How many integers the sysctl holds (tcp_rmem: 3). */
  values: number;
  /** Per network namespace, or one value for the whole host. */
  scope: "netns" | "global";
  /** Absent on some kernels: skipped rather than failing the tuner. */
  optional?: boolean;
  /**
   * Values the sysctl takes with their plain meaning (min 1 where 0 means "off", "reject" or
   * "starve"); nothing outside it is ever written. Default: a non-negative `int`.
   */
  domain?: ValueDomain;
}

export interface ScenarioDecl {
  id: number;
  /** bpftune-compatible name: appears in "Scenario '<name>' occurred for tunable ...". */
  name: string;
  description: string;
}

/** A logger; `fields.event` names the record's kind (its journal MESSAGE_ID). */
export interface LogLike {
  /** Whether debug records go anywhere: a line built per event only when they do. */
  readonly debugEnabled: boolean;
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  notice(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
}

/** What the daemon offers a running tuner. */
export interface TunerContext {
  log: LogLike;
  /** 0..4, see learning_rate.ts. */
  learningRate: number;
  /** Observe and propose only; the daemon never writes in advise mode. */
  advise: boolean;
  /** Live value of a sysctl in a namespace ("global" = the host's), or null when absent. */
  read(sysctl: string, netns: string): number[] | null;
  /** Several of one namespace in one visit of it (use readTogether(), tuning/context.ts). */
  readMany?(sysctls: readonly string[], netns: string): (number[] | null)[];
  /**
   * Hands a decision to the daemon, which applies the journal, overrides, cool-down, coalescing
   * and ceilings, then writes (or only logs, in advise mode). Returns true if it was written.
   */
  propose(p: Proposal): boolean;
  /**
   * Hands the decisions of a tuner's pure rules to the daemon, in order, in namespace `netns`
   * (nulls skipped): changes go through propose() with this tuner's name filled in, at-ceiling
   * decisions through atCeiling(), needs-more through needsMore(). Returns true if any change was
   * written.
   */
  apply(decisions: readonly (Decision | null)[], netns: string): boolean;
  /**
   * Asked right after a refused apply()/propose() of a change of `sysctl` in `netns`: when the
   * rate gate's cool-down alone held it back, the time it ends (now()'s clock), when the same
   * change may go through; null when it was refused for another reason (an override, the policy,
   * a failed write, nothing to change), which waiting does not lift. Absent: never known.
   */
  coolingDownUntil?(sysctl: string, netns: string): number | null;
  /** A growth that cannot happen because `value` sits at `ceiling`: logged once per situation. */
  atCeiling(sysctl: string, netns: string, value: number[], ceiling: number): void;
  /**
   * `sysctl` stays as it is unless the event's evidence exceeds `need`: the event's key is muted
   * up to it in the kernel (event_mutes.ts).
   */
  needsMore(sysctl: string, netns: string, need: number): void;
  /**
   * Namespaces a polling tuner looks at (keys): the one `--netns` names, else the host's. Event-
   * driven hooks see every namespace; a poll cannot enumerate them cheaply.
   */
  watchedNetns(): string[];
  /** True when the test switch BPFPILOT_FAULT_INJECT names `fault` (e.g. a simulated state). */
  faultInjected?(fault: string): boolean;
  /** Milliseconds, monotonic; injected so tests need no sleeping. */
  now(): number;
  /** Tuners that manage `sysctl` (dotted), in load order: for the admin-override detector. */
  managers(sysctl: string): string[];
  /** Every sysctl (dotted) a tuner this daemon runs declares: what the detector filters on (the
   * daemon always gives it; a fake context without it watches nothing). */
  managedSysctls?(): string[];
  /**
   * True when bpfpilot itself wrote `values` (text, as the kernel got it) to `sysctl` in the
   * last few seconds: how writes are told apart where the kernel does not name the writer.
   */
  isOwnRecentWrite(sysctl: string, values: string): boolean;
  /**
   * True when the administrator took over any of this tuner's sysctls in `netns` (or in every
   * namespace): for tuners whose sysctls only make sense changed together (bpftune §2.11 disables
   * the whole tuner per namespace), e.g. neigh_table's three thresholds.
   */
  tunerOverridden(netns: string): boolean;
  /** Where this tuner was taken over or disabled: namespace key (ANY_NETNS: every one), sysctl. */
  takenOverIn?(): { netns: string; sysctl: string }[];
  /**
   * Moves whenever takenOverIn() may answer differently (caught up with the state directory,
   * where another process's `enable` lands): what a tuner that follows it every tick compares.
   * Absent: takenOverIn() is asked each time.
   */
  overridesVersion?(): number;
  /** The namespace `--netns` names (key), or null: every namespace is tuned. */
  onlyNetns?: string | null;
  /** Records that the admin took `sysctl` over in `netns`: it is not tuned until enabled. */
  markOverride(
    o: { netns: string; sysctl: string; tuner: string; pid: number; comm: string },
  ): void;
}

/** A table a tuner shows through the control socket (tcp_conn: `bpfpilot query paths`). */
export interface TunerTable {
  /** The query verb that shows it. */
  name: string;
  /** Columns of the text form, in order; the JSON form carries every field of each row. */
  columns: string[];
  rows: Record<string, unknown>[];
}

/** A tuner's own metric sample, exposed as `bpfpilot_<name>` (`_total` added for counters). */
export interface TunerMetric {
  name: string;
  type: "counter" | "gauge";
  help: string;
  labels: Record<string, string>;
  value: number;
}

export interface TunerInstance {
  /** After load, before attach: fill the object's `config` map, seed state. */
  configure?(obj: BpfObject): void;
  /**
   * After attach: the hooks that did attach (a tuner may poll for the ones that did not), and
   * each one's attach kind.
   */
  onAttached?(hooks: readonly string[], kinds: ReadonlyMap<string, AttachKind>): void;
  /** One decoded event from this tuner's BPF object. */
  onEvent?(ev: BpfpEvent): void;
  /** Called about once a second: polling work, decay of windows. */
  onTick?(): void;
  /**
   * Network namespaces (keys) that are gone: forget what is kept per namespace, so memory stays
   * bounded while containers come and go (a gone namespace's inode may come back as another's).
   */
  onNetnsGone?(gone: ReadonlySet<string>): void;
  /** Per-tuner lines for the exit summary beyond the generic ones. */
  summary?(): string[];
  /** Tables for the control socket's tuner-specific verbs (read when asked). */
  tables?(): TunerTable[];
  /** Metrics beyond the generic ones (read when asked). */
  metrics?(): TunerMetric[];
  /**
   * A connection tuner's (tunesConnections) per-path choices that differ from what the path's
   * connections run, from its own rules; read by `audit` at the end of its window.
   */
  connectionAdvice?(): ConnectionAdvice[];
  stop?(): void;
}

/** What a connection tuner would choose for one path's connections, and why (no sysctl holds it). */
export interface ConnectionAdvice {
  /** The rule that decided, e.g. tcp_conn's "lossy-path" or "learned-choice". */
  rule: string;
  /** The scenario, in bpftune's words. */
  scenario: string;
  /** What is chosen, as bpftune names it: net.persock.tcp.congestion_control. */
  setting: string;
  /** Namespace key (kernel/netns.ts). */
  netns: string;
  /** The path's remote address. */
  remote: string;
  /** What the path's connections ran. */
  current: string;
  /** What the tuner would give them. */
  recommended: string;
  /** What the tuner would do and why, in its words. */
  reason: string;
  /** What was seen on the path, one line each. */
  observations: string[];
  /** Connections to the path that were seen. */
  connections: number;
}

export interface TunerDefinition {
  /** Short name: `--allow tcp_buffer`, logs, state file. */
  name: string;
  /** Carried by every event of this tuner's object (bpf/include/bpfpilot.h `tuner`). */
  id: number;
  description: string;
  /**
   * Runs whatever `--allow` lists (only `--disable` stops it): the admin-override detector,
   * which protects every other tuner's sysctls.
   */
  alwaysOn?: boolean;
  /**
   * The tuner's compiled BPF object, embedded with a bytes import of
   * `dist/bpf/<name>.bpf.o` (built from `bpf/<name>.bpf.c`); a tuner without one only polls.
   */
  object?: Uint8Array;
  /**
   * The object's contract, generated from its BTF: `import { contract } from
   * "../../dist/bpf/<name>.contract.ts"` (event kinds, payload and parameter layouts, id).
   */
  contract?: Contract;
  tunables: TunableDecl[];
  /** Tunes something other than sysctls (tcp_conn: each connection's congestion control). */
  tunesConnections?: boolean;
  /**
   * Sysctls the tuner never writes whose change by the administrator takes it over in that
   * namespace as a tunable's would (bpftune §2.11: tcp_conn and tcp_congestion_control).
   */
  overriddenBy?: readonly string[];
  scenarios: ScenarioDecl[];
  hooks: HookDecl[];
  /**
   * Why the tuner has nothing to do on this kernel whatever attaches (e.g. a limit the kernel no
   * longer enforces), or null. Checked before probing: such a tuner is neither probed nor loaded,
   * and `support`, `query tuners` and the start-up log give the reason.
   */
  unavailable?(): string | null;
  create(ctx: TunerContext): TunerInstance;
}

/** The definition's own reason for being unavailable here; a failing check is a reason too. */
export function unavailableOnThisKernel(def: TunerDefinition): string | null {
  try {
    return def.unavailable?.() ?? null;
  } catch (e) {
    return `cannot tell whether it can work here: ${(e as Error).message}`;
  }
}

/** Every sysctl whose change by the administrator takes `def` over: tunables and overriddenBy. */
export function overrideSysctls(
  def: Pick<TunerDefinition, "tunables" | "overriddenBy">,
): string[] {
  return [...def.tunables.map((t) => t.sysctl), ...(def.overriddenBy ?? [])];
}

/** A tuner that changes something (sysctls or connections), unlike the override detector. */
export function tunes(def: Pick<TunerDefinition, "tunables" | "tunesConnections">): boolean {
  return def.tunables.length > 0 || def.tunesConnections === true;
}
