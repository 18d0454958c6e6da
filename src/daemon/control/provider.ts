/**
 * What the control server asks of the daemon: one method per verb. The daemon implements it;
 * tests use a fake. Methods may throw ControlError (e.g. `not-found`) to answer with that code;
 * any other exception is answered as `internal` without taking the server down.
 */
import type { MetricsSnapshot } from "../metrics.ts";

type Awaitable<T> = T | Promise<T>;

/** A sysctl field as shown to users; very large u64 values may be given as decimal strings. */
export type TunableValue = number | string;

/**
 * - active: tuning
 * - advise: watching and logging what it would change, changing nothing
 * - disabled: switched off by `disable` or configuration
 * - manual: the admin changed one of its sysctls, so it backed off
 * - unavailable: cannot run on this kernel (missing hook, BTF, ...)
 */
export type TunerState = "active" | "advise" | "disabled" | "manual" | "unavailable";

export interface TunerInfo {
  name: string;
  state: TunerState;
  /** Why it is in that state, e.g. "admin set net.ipv4.tcp_rmem at 12:01:02". */
  reason: string;
}

export interface TunableInfo {
  tuner: string;
  /** sysctl name (`net.ipv4.tcp_rmem`) or a descriptive name for non-sysctl tunables. */
  name: string;
  kind: "sysctl" | "other";
  type: "integer" | "string";
  values: TunableValue[];
  /** bpfpilot may change it. */
  managed: boolean;
  /** The admin changed it; bpfpilot leaves it alone. */
  overridden: boolean;
  /** A boot-time sysctl.d file sets it (`/etc/sysctl.d/x.conf:3`): the administrator's value. */
  pinnedBy?: string;
  /** The configuration file's rule ("advise-only by bpfpilot.conf:7", "ceiling ... by ..."). */
  policy?: string;
  /** Named network namespace; absent = the initial namespace. */
  netns?: string;
}

export interface TunableStatus {
  tuner: string;
  name: string;
  /** Live values, read when asked. */
  values: TunableValue[];
  netns?: string;
}

/** Who answers: the daemon process itself (`query status`). */
export interface DaemonInfo {
  pid: number;
  version: string;
  stateDir: string;
  /** Pid file of a background (`-D`) daemon; null otherwise. */
  pidFile: string | null;
  /** ISO 8601 time the daemon started. */
  startedAt: string;
  uptimeSeconds: number;
  advise: boolean;
}

/** `query status`: the daemon, then every tunable's live values. */
export interface StatusData {
  daemon: DaemonInfo | null;
  tunables: TunableStatus[];
}

export interface ScenarioCount {
  tuner: string;
  tunable: string;
  scenario: string;
  description: string;
  netns?: string;
  count: number;
}

export interface ChangeRecord {
  tuner: string;
  sysctl: string;
  netns?: string;
  initial: TunableValue[];
  current: TunableValue[];
  /** How many writes bpfpilot made. */
  changes: number;
}

export interface SummaryData {
  /** ISO 8601 time the daemon started. */
  since: string;
  scenarios: ScenarioCount[];
  changes: ChangeRecord[];
  /**
   * Namespaces that are gone, folded: their scenarios and changes no longer appear above (absent
   * when none was).
   */
  gone?: GoneSummary;
}

export interface GoneSummary {
  namespaces: number;
  scenarios: Omit<ScenarioCount, "netns">[];
  changes: { tuner: string; sysctl: string; changes: number; namespaces: number }[];
}

export interface RollbackEntry {
  tuner: string;
  sysctl: string;
  /** Named network namespace (as under /run/netns); absent = the initial namespace. */
  netns?: string;
  original: TunableValue[];
  current: TunableValue[];
}

export interface ToggleResult {
  target: string;
  kind: "tuner" | "sysctl";
  /** State after the request, e.g. the tuner's new TunerState or "managed"/"unmanaged". */
  state: string;
  /** False when it already was in that state. */
  changed: boolean;
  message: string;
}

/** One tuner's table for a tuner-specific verb (tcp_conn's `paths`). */
export interface TunerTableData {
  tuner: string;
  /** Columns of the text form, in order; rows carry more fields for JSON readers. */
  columns: string[];
  rows: Record<string, unknown>[];
}

export interface ControlProvider {
  tuners(): Awaitable<TunerInfo[]>;
  /**
   * `netns`: which namespaces (control/netns_scope.ts: changed, all, global, a name or key;
   * absent: changed); a namespace it cannot find is a `not-found` ControlError.
   */
  tunables(netns?: string): Awaitable<TunableInfo[]>;
  status(netns?: string): Awaitable<TunableStatus[]>;
  /** The daemon process (pid, state dir, uptime); absent in fakes that do not model one. */
  daemon?(): Awaitable<DaemonInfo>;
  summary(): Awaitable<SummaryData>;
  /** What to restore; the server turns it into `sysctl -w` lines and restores nothing. */
  rollback(): Awaitable<RollbackEntry[]>;
  enable(target: string): Awaitable<ToggleResult>;
  disable(target: string): Awaitable<ToggleResult>;
  metrics(): Awaitable<MetricsSnapshot>;
  /** Tables named `name` of the running tuners (none when no tuner has one). */
  tables?(name: string): Awaitable<TunerTableData[]>;
}
