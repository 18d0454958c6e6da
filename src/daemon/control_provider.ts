/**
 * The control socket's view of a running daemon: tuner states, tunables with live values,
 * statistics, the rollback plan and metrics, all read when asked (nothing is cached, so an answer
 * is never staler than the request), plus enable/disable through the journal's overrides.
 */
import { canonicalSysctlName } from "../kernel/sysctl.ts";
import { VERSION } from "../version.ts";
import {
  ANY_NETNS,
  GLOBAL_NETNS,
  netnsKey,
  netnsRegistry,
  parseNetnsKey,
} from "../kernel/netns.ts";
import { readTogether } from "../tuning/context.ts";
import { normalizeTunerName } from "../tuning/names.ts";
import { ControlError } from "./control/protocol.ts";
import { DEFAULT_NETNS_SCOPE } from "./control/netns_scope.ts";
import type {
  ControlProvider,
  DaemonInfo,
  RollbackEntry,
  SummaryData,
  ToggleResult,
  TunableInfo,
  TunableStatus,
  TunableValue,
  TunerInfo,
  TunerState,
  TunerTableData,
} from "./control/provider.ts";
import { isControlDisable, recordDisable } from "./control_overrides.ts";
import { JournalError, type OverrideRecord, type SysctlValue } from "./journal.ts";
import type { Journal } from "./journal.ts";
import { type MetricsNetns, type MetricsSnapshot, sampleProcess } from "./metrics.ts";
import type { DaemonStats } from "./stats.ts";
import type { SysctlIO } from "./sysctl_io.ts";
import {
  overrideSysctls,
  type TunableDecl,
  type TunerDefinition,
  type TunerInstance,
} from "../tuning/tuner.ts";
import { type AttachedHook, observedThrough } from "./tuner_loader.ts";

/** What the provider reads from the daemon (a `Daemon` fits; tests pass a fake). */
export interface ProviderDaemon {
  readonly opts: {
    readonly advise: boolean;
    readonly onlyNetns?: string | null;
    readonly stateDir?: string;
    /** Which namespaces' tunables metrics show (absent: changed). */
    readonly metricsNetns?: MetricsNetns;
  };
  /** Boot-time sysctl.d values (absent or null: not read). */
  readonly pinned?: {
    pin(sysctl: string, netns: string): { file: string; line: number } | null;
    frozen(sysctl: string, netns: string): boolean;
  } | null;
  /** The configuration file's policy (absent: none). */
  readonly policy?: {
    describe(tuner: string, sysctl: string): { text: string; disabled: boolean } | null;
  };
  /** Pid file of a background daemon (absent or null: none). */
  readonly pidFile?: string | null;
  readonly startedAt: Date;
  readonly stats: DaemonStats;
  readonly journal: Journal;
  /** Live values to show: reads that keep no /proc/sys file open (the tuners' bounded set). */
  readonly reportReads: Pick<SysctlIO, "read" | "readMany">;
  /** The rate gate: `enable` makes it forget, so a value reset meanwhile is tuned afresh. */
  readonly gate: { forget(netns: string, sysctl: string): void };
  readonly loaded: readonly {
    def: TunerDefinition;
    instance?: Pick<TunerInstance, "tables" | "metrics">;
    attached: readonly AttachedHook[];
    missing: readonly { hook: string; reason: string }[];
  }[];
  readonly unavailable: readonly { def: TunerDefinition; reason: string }[];
  /** Hook hits of a tuner's object that its muted keys kept from being sent (null: unknown). */
  mutedHits?(tuner: string): number | null;
  /**
   * Overrides were cleared: event keys muted for them are unmuted now, not at the next tick (a
   * flow that starts right after `enable` may send its one growth event before then).
   */
  overridesEnded?(): void;
  /** Names switched off at start (--disable, --allow). */
  readonly disabled: readonly string[];
  /** Every tuner the daemon knows, loaded or not. */
  readonly definitions: readonly TunerDefinition[];
  describeScenario(tuner: string, scenario: string): string;
}

/**
 * How a namespace is shown: absent for the daemon's own, else its name (/run/netns, a container
 * runtime's directory) or its key. From the registry's memory: no file system access.
 */
export function netnsDisplayName(key: string): string | undefined {
  if (key === GLOBAL_NETNS) return undefined;
  try {
    const inum = parseNetnsKey(key);
    return (inum === null ? null : netnsRegistry().nameOf(inum)) ?? key;
  } catch {
    return key;
  }
}

function values(v: SysctlValue): TunableValue[] {
  return typeof v === "string" ? [v] : [...v];
}

/**
 * An override as the control socket shows it: the journal's, or one that waits in memory for its
 * namespace to be identified (`waiting`: Journal.pendingOverrides; it holds meanwhile).
 */
type ShownOverride = OverrideRecord & { waiting?: true };

function describeOverride(o: ShownOverride): string {
  const where = o.netns === GLOBAL_NETNS ? "" : ` in netns ${netnsDisplayName(o.netns)}`;
  return `admin changed ${o.sysctl}${where} (pid ${o.pid}, ${o.comm}) at ${o.at}` +
    (o.waiting ? ", not recorded yet: waiting for its namespace to be identified" : "");
}

/** Journal trouble (a state file damaged while running) is the daemon's failure, said plainly. */
function guarded<T>(work: () => T): T {
  try {
    return work();
  } catch (e) {
    if (e instanceof JournalError) throw new ControlError("failed", e.message);
    throw e;
  }
}

interface Row {
  tuner: string;
  decl: TunableDecl;
  netns: string;
  live: number[];
}

export class DaemonControlProvider implements ControlProvider {
  constructor(private readonly d: ProviderDaemon) {}

  /** The journal's overrides, then those waiting for their namespace (not recorded yet). */
  #overrides(): ShownOverride[] {
    const waiting = this.d.journal.pendingOverrides();
    const recorded: ShownOverride[] = this.d.journal.overrides();
    return waiting.length === 0
      ? recorded
      : [...recorded, ...waiting.map((o) => ({ ...o, waiting: true as const }))];
  }

  tuners(): TunerInfo[] {
    return guarded(() => {
      const overrides = this.#overrides();
      return this.d.definitions.map((def) => ({
        name: def.name,
        ...this.#tunerState(def, overrides),
      }));
    });
  }

  tunables(netns?: string): TunableInfo[] {
    return guarded(() => {
      const overrides = this.#overrides(); // one copy for the whole answer
      return this.#queryRows(netns, overrides).map((r) => {
        const off = overrides.some((o) => o.sysctl === r.decl.sysctl && isControlDisable(o));
        const admin = overrides.some((o) =>
          o.sysctl === r.decl.sysctl && o.netns === r.netns && !isControlDisable(o)
        );
        const policy = this.d.policy?.describe(r.tuner, r.decl.sysctl) ?? null;
        return {
          tuner: r.tuner,
          name: r.decl.sysctl,
          kind: "sysctl" as const,
          type: "integer" as const,
          values: r.live,
          managed: this.#running(r.tuner) && !off && !admin && this.#inScope(r) &&
            !(this.d.pinned?.frozen(r.decl.sysctl, r.netns) ?? false) && !policy?.disabled,
          overridden: admin,
          ...this.#pinnedField(r.decl.sysctl, r.netns),
          ...(policy ? { policy: policy.text } : {}),
          ...this.#netnsField(r.netns),
        };
      });
    });
  }

  #pinnedField(sysctl: string, netns: string): { pinnedBy?: string } {
    const pin = this.d.pinned?.pin(sysctl, netns);
    return pin ? { pinnedBy: `${pin.file}:${pin.line}` } : {};
  }

  daemon(): DaemonInfo {
    return {
      pid: Deno.pid,
      version: VERSION,
      stateDir: this.d.opts.stateDir ?? this.d.journal.dir,
      pidFile: this.d.pidFile ?? null,
      startedAt: this.d.startedAt.toISOString(),
      uptimeSeconds: Math.max(0, Math.round((Date.now() - this.d.startedAt.getTime()) / 1000)),
      advise: this.d.opts.advise,
    };
  }

  status(netns?: string): TunableStatus[] {
    return guarded(() =>
      this.#queryRows(netns, this.#overrides()).map((r) => ({
        tuner: r.tuner,
        name: r.decl.sysctl,
        values: r.live,
        ...this.#netnsField(r.netns),
      }))
    );
  }

  summary(): SummaryData {
    const { stats } = this.d;
    return {
      since: this.d.startedAt.toISOString(),
      scenarios: [...stats.scenarios.values()].map((s) => ({
        tuner: s.tuner,
        tunable: s.sysctl,
        scenario: s.scenario,
        description: this.d.describeScenario(s.tuner, s.scenario),
        count: s.count,
        ...this.#netnsField(s.netns),
      })),
      changes: [...stats.changes.values()].map((c) => ({
        tuner: c.tuner,
        sysctl: c.sysctl,
        initial: [...c.first],
        current: [...c.last],
        changes: c.changes,
        ...this.#netnsField(c.netns),
      })),
      ...(stats.gone.namespaces === 0 ? {} : {
        gone: {
          namespaces: stats.gone.namespaces,
          scenarios: [...stats.gone.scenarios.values()].map((g) => ({
            tuner: g.tuner,
            tunable: g.sysctl,
            scenario: g.scenario,
            description: this.d.describeScenario(g.tuner, g.scenario),
            count: g.count,
          })),
          changes: [...stats.gone.changes.values()].map((g) => ({ ...g })),
        },
      }),
    };
  }

  rollback(): RollbackEntry[] {
    return guarded(() => {
      const plan = this.d.journal.planRollback((netns, sysctl) =>
        this.d.reportReads.read(sysctl, netns)
      );
      return plan.restore.map((step) => ({
        tuner: step.tuner,
        sysctl: step.sysctl,
        original: values(step.to),
        current: values(step.from),
        ...this.#netnsField(step.netns),
      }));
    });
  }

  enable(target: string): ToggleResult {
    return guarded(() => {
      const t = this.#resolve(target);
      if (t.kind === "tuner") {
        const def = t.defs[0];
        const notRunning = this.#notRunningReason(def.name);
        if (notRunning !== null) {
          throw new ControlError("failed", `cannot enable ${def.name}: ${notRunning}`);
        }
        this.#forget(def.tunables.map((x) => x.sysctl)); // before the overrides name fewer netns
        const cleared = this.d.journal.clearOverrides(def.name);
        if (cleared > 0) this.d.overridesEnded?.();
        const state = this.#tunerState(def, this.#overrides()).state;
        return {
          target: def.name,
          kind: "tuner",
          state,
          changed: cleared > 0,
          message: cleared > 0
            ? `${def.name} tunes again (${cleared} override(s) cleared); state: ${state}`
            : `${def.name} was not disabled or overridden; state: ${state}`,
        };
      }
      this.#forget([t.sysctl]);
      const cleared = this.d.journal.clearOverrides(t.sysctl);
      if (cleared > 0) this.d.overridesEnded?.();
      const running = t.defs.filter((d) => this.#running(d.name));
      const state = running.length > 0 ? "managed" : "unmanaged";
      const note = running.length > 0
        ? ""
        : ` (no tuner that manages it is running: ${t.defs.map((d) => d.name).join(", ")})`;
      return {
        target: t.sysctl,
        kind: "sysctl",
        state,
        changed: cleared > 0,
        message: (cleared > 0
          ? `${t.sysctl} is tuned again (${cleared} override(s) cleared)`
          : `${t.sysctl} was not disabled or overridden`) + note,
      };
    });
  }

  disable(target: string): ToggleResult {
    return guarded(() => {
      const t = this.#resolve(target);
      if (t.kind === "tuner") {
        const def = t.defs[0];
        const sysctls = overrideSysctls(def);
        if (sysctls.length === 0) {
          throw new ControlError(
            "bad-args",
            `the ${def.name} tuner changes no sysctl (it notices the administrator's changes), ` +
              `so there is nothing to disable; to stop it, restart bpfpilot with --disable ` +
              def.name,
          );
        }
        let changed = false;
        for (const sysctl of sysctls) {
          changed = recordDisable(this.d.journal, def.name, sysctl) || changed;
        }
        const state = this.#tunerState(def, this.#overrides()).state;
        const names = def.tunables.length > 0
          ? def.tunables.map((x) => x.sysctl).join(", ")
          : "any connection's settings";
        return {
          target: def.name,
          kind: "tuner",
          state,
          changed,
          message: changed
            ? `${def.name} disabled: bpfpilot no longer changes ${names} (values stay as they ` +
              `are; 'enable ${def.name}' resumes)`
            : `${def.name} was already disabled`,
        };
      }
      let changed = false;
      for (const def of t.defs) {
        changed = recordDisable(this.d.journal, def.name, t.sysctl) || changed;
      }
      return {
        target: t.sysctl,
        kind: "sysctl",
        state: "unmanaged",
        changed,
        message: changed
          ? `${t.sysctl} disabled: bpfpilot no longer changes it in any namespace (its value ` +
            `stays as it is; 'enable ${t.sysctl}' resumes)`
          : `${t.sysctl} was already disabled`,
      };
    });
  }

  async metrics(): Promise<MetricsSnapshot> {
    const { stats } = this.d;
    const tunables = guarded(() =>
      this.#rows(this.#metricsShows(), this.#namespaces(this.#overrides()))
    ).map((r) => ({
      sysctl: r.decl.sysctl,
      netns: netnsDisplayName(r.netns),
      values: r.live,
      changes: stats.changes.get(`${r.netns}\0${r.decl.sysctl}`)?.changes ?? 0,
    }));
    // The exposition has one series per (tuner, scenario): namespaces and sysctls are summed.
    const scenarioCounts = new Map<string, { tuner: string; scenario: string; count: number }>();
    for (const s of [...stats.scenarios.values(), ...stats.gone.scenarios.values()]) {
      const key = `${s.tuner}\0${s.scenario}`;
      const m = scenarioCounts.get(key) ?? { tuner: s.tuner, scenario: s.scenario, count: 0 };
      m.count += s.count;
      scenarioCounts.set(key, m);
    }
    const events = this.d.loaded.map((t) => {
      const e = stats.events.get(t.def.name);
      const muted = this.d.mutedHits?.(t.def.name) ?? undefined;
      return {
        tuner: t.def.name,
        seen: e?.events ?? 0,
        dropped: e?.dropped ?? 0,
        muted,
        rehandled: e?.rehandled ?? 0,
      };
    });
    const hooks = [
      ...this.d.loaded.flatMap((t) => [
        ...t.attached.map((a) => ({
          tuner: t.def.name,
          hook: a.hook,
          kind: a.kind,
          attached: true,
        })),
        ...t.missing.map((m) => ({
          tuner: t.def.name,
          hook: m.hook,
          kind: "none",
          attached: false,
        })),
      ]),
      ...this.d.unavailable.flatMap((u) =>
        u.def.hooks.map((h) => ({ tuner: u.def.name, hook: h.name, kind: "none", attached: false }))
      ),
    ];
    return {
      tunables,
      scenarios: [...scenarioCounts.values()],
      events,
      hooks,
      tunerMetrics: this.d.loaded.flatMap((t) =>
        this.#tunerOwn(t.def.name, () => t.instance?.metrics?.() ?? []).map((m) => ({
          tuner: t.def.name,
          ...m,
        }))
      ),
      process: await sampleProcess(),
    };
  }

  tables(name: string): TunerTableData[] {
    return this.d.loaded.flatMap((t) =>
      this.#tunerOwn(t.def.name, () => t.instance?.tables?.() ?? [])
        .filter((x) => x.name === name)
        .map((x) => ({
          tuner: t.def.name,
          columns: x.columns,
          // Namespaces as everywhere else: their /run/netns name where they have one.
          rows: x.rows.map((r) =>
            typeof r.netns === "string" ? { ...r, netns: netnsDisplayName(r.netns) } : r
          ),
        }))
    );
  }

  // --- internals ------------------------------------------------------------------------------

  /**
   * The gate coalesces a change it already made; after a disable (or the admin's write) the
   * value may be back where it was, and the same change must be possible again.
   */
  #forget(sysctls: string[]): void {
    for (const netns of this.#namespaces(this.#overrides())) {
      for (const sysctl of sysctls) this.d.gate.forget(netns, sysctl);
    }
  }

  /** A tuner's own answer; its failure is reported as the daemon's, never taking it down. */
  #tunerOwn<T>(tuner: string, read: () => T[]): T[] {
    try {
      return read();
    } catch (e) {
      throw new ControlError("failed", `tuner ${tuner}: ${(e as Error).message}`);
    }
  }

  #running(tuner: string): boolean {
    return this.d.loaded.some((t) => t.def.name === tuner);
  }

  /** Why a tuner does not run at all (unavailable, switched off at start), or null. */
  #notRunningReason(tuner: string): string | null {
    const u = this.d.unavailable.find((x) => x.def.name === tuner);
    if (u) return `it is unavailable on this kernel: ${u.reason}`;
    if (this.d.disabled.includes(tuner)) {
      return "it was switched off when bpfpilot started (--disable or --allow); restart " +
        "bpfpilot without that option";
    }
    return null;
  }

  #tunerState(
    def: TunerDefinition,
    overrides: readonly ShownOverride[],
  ): { state: TunerState; reason: string } {
    const u = this.d.unavailable.find((x) => x.def.name === def.name);
    if (u) return { state: "unavailable", reason: u.reason };
    if (this.d.disabled.includes(def.name)) {
      return { state: "disabled", reason: "switched off at start (--disable or --allow)" };
    }
    const sysctls = overrideSysctls(def);
    const off = sysctls.filter((s) =>
      overrides.some((o) => o.sysctl === s && o.tuner === def.name && isControlDisable(o))
    );
    if (sysctls.length > 0 && off.length === sysctls.length) {
      return {
        state: "disabled",
        reason: `switched off with 'disable ${def.name}' ('enable ${def.name}' resumes)`,
      };
    }
    const admin = overrides.filter((o) => sysctls.includes(o.sysctl) && !isControlDisable(o));
    if (admin.length > 0) {
      const sysctlsLeft = admin.length === 1 ? "that sysctl" : "those sysctls";
      const left = def.tunables.length === 0 ? "connections there" : sysctlsLeft;
      return {
        state: "manual",
        reason: admin.map(describeOverride).join("; ") +
          `; it leaves ${left} alone until 'enable ${admin[0].sysctl}'`,
      };
    }
    const t = this.d.loaded.find((x) => x.def.name === def.name);
    const notes: string[] = [];
    if (this.d.opts.advise) notes.push("advise mode: logs what it would change, changes nothing");
    if (off.length > 0) notes.push(`disabled: ${off.join(", ")}`);
    if (t && (t.attached.length > 0 || t.missing.length > 0)) {
      notes.push(`hooks: ${observedThrough(t, false)}`);
    }
    if (t && t.missing.length > 0) {
      notes.push(`without optional ${t.missing.map((m) => m.hook).join(", ")}`);
    }
    if (sysctls.length === 0) notes.push("watches sysctl writes to notice the administrator");
    return { state: this.d.opts.advise ? "advise" : "active", reason: notes.join("; ") };
  }

  /**
   * Namespaces worth showing: the daemon's own, its --netns, and any it changed or saw, or has
   * `overrides` (the journal's, read once by the request) in.
   */
  #namespaces(overrides: readonly OverrideRecord[]): string[] {
    const keys = new Set<string>([GLOBAL_NETNS]);
    if (this.d.opts.onlyNetns) keys.add(this.d.opts.onlyNetns);
    for (const c of this.d.stats.changes.values()) keys.add(c.netns);
    for (const s of this.d.stats.scenarios.values()) keys.add(s.netns);
    for (const netns of this.d.journal.changedKeys().namespaces()) keys.add(netns);
    for (const o of overrides) keys.add(o.netns);
    keys.delete(ANY_NETNS); // "every namespace" is a scope of overrides, not a namespace
    return [...keys];
  }

  /**
   * The (namespace, sysctl) pairs metrics show, or null for all of #rows' (--metrics-netns all).
   * By default the host's namespace has every tunable and any other only what bpfpilot changed
   * there since it started (its stats) or still owns a restorable change of (its journal): a
   * scrape then reads, and Prometheus keeps, series in proportion to bpfpilot's changes, not to
   * the containers on the host (at 1,000 namespaces every tunable of each would be tens of
   * thousands of series and a /proc/sys read each).
   */
  #metricsShows(): ((netns: string, sysctl: string) => boolean) | null {
    return this.d.opts.metricsNetns === "all" ? null : this.#changedShows();
  }

  /** The host's every pair; elsewhere those bpfpilot changed since start or holds in its journal. */
  #changedShows(): (netns: string, sysctl: string) => boolean {
    // stats.changes is keyed "netns\0sysctl"; the journal answers from its own index.
    const changes = this.d.stats.changes;
    const owned = this.d.journal.changedKeys();
    return (netns, sysctl) =>
      netns === GLOBAL_NETNS || changes.has(`${netns}\0${sysctl}`) || owned.has(netns, sysctl);
  }

  /**
   * The rows of `tunables` and `status` for the request's netns (control/netns_scope.ts). By
   * default (changed) the host's every tunable and, elsewhere, what bpfpilot changed, holds a
   * journal entry of or was overridden in by the admin, plus all of --netns's namespace: an
   * answer grows with what bpfpilot did there, not with the containers (every tunable of 1,000
   * namespaces took a second to read). `all`: every namespace the daemon knows, in full.
   */
  #queryRows(selector: string | undefined, overrides: readonly OverrideRecord[]): Row[] {
    const scope = selector ?? DEFAULT_NETNS_SCOPE;
    if (scope === "all") return this.#rows(null, this.#namespaces(overrides));
    if (scope === "changed") {
      const changed = this.#changedShows();
      const admin = new Set(
        overrides.filter((o) => o.netns !== ANY_NETNS).map((o) => `${o.netns}\0${o.sysctl}`),
      );
      const whole = this.d.opts.onlyNetns ?? null;
      return this.#rows(
        (netns, sysctl) =>
          netns === whole || changed(netns, sysctl) || admin.has(`${netns}\0${sysctl}`),
        this.#namespaces(overrides),
      );
    }
    const key = this.#netnsNamed(scope, overrides);
    return this.#rows((netns) => netns === key, [key]);
  }

  /**
   * The key of the namespace `selector` names: `global`, a name as answers show it (one the
   * daemon knows first, then any its registry found), `ns:<inode>` or a bare inode number.
   */
  #netnsNamed(selector: string, overrides: readonly OverrideRecord[]): string {
    if (selector === "global") return GLOBAL_NETNS;
    const known = this.#namespaces(overrides);
    const named = known.find((k) => k !== GLOBAL_NETNS && netnsDisplayName(k) === selector);
    if (named !== undefined) return named;
    const registry = netnsRegistry();
    const inum = registry.inumNamed(selector) ??
      (/^(ns:)?\d{1,20}$/.test(selector) ? BigInt(selector.replace(/^ns:/, "")) : null);
    if (inum !== null) {
      const key = netnsKey(inum);
      if (key === GLOBAL_NETNS || known.includes(key) || registry.knows(inum)) return key;
    }
    throw new ControlError(
      "not-found",
      `no network namespace ${JSON.stringify(selector)} known to bpfpilot; ` +
        `'--netns all' lists the ones it tunes or watched, 'ip netns' the named ones`,
    );
  }

  /**
   * Every tunable of every known tuner, per namespace it applies to (of `namespaces`: for a whole
   * answer #namespaces'), with its live value; with `shown`, only the pairs it keeps (the others
   * are never read).
   */
  #rows(
    shown: ((netns: string, sysctl: string) => boolean) | null,
    namespaces: readonly string[],
  ): Row[] {
    const wanted = this.d.definitions.flatMap((def) =>
      def.tunables.flatMap((decl) =>
        (decl.scope === "global" ? [GLOBAL_NETNS] : namespaces)
          .filter((netns) => shown === null || shown(netns, decl.sysctl))
          .map((netns) => ({ tuner: def.name, decl, netns }))
      )
    );
    const live = this.#liveValues(wanted.map((w) => ({ netns: w.netns, sysctl: w.decl.sysctl })));
    return wanted.flatMap((w) => {
      const values = live.get(`${w.netns}\0${w.decl.sysctl}`) ?? null;
      return values === null ? [] : [{ ...w, live: values }];
    });
  }

  /** Live values by `netns\0sysctl`: one visit of each namespace for all its sysctls. */
  #liveValues(wanted: { netns: string; sysctl: string }[]): Map<string, number[] | null> {
    const byNetns = new Map<string, Set<string>>();
    for (const w of wanted) byNetns.set(w.netns, (byNetns.get(w.netns) ?? new Set()).add(w.sysctl));
    const live = new Map<string, number[] | null>();
    const reads = this.d.reportReads;
    for (const [netns, set] of byNetns) {
      const sysctls = [...set];
      let values: (number[] | null)[];
      try {
        values = readTogether(reads, sysctls, netns);
      } catch {
        // One of them unreadable now: each on its own, so the others still show.
        values = sysctls.map((s) => {
          try {
            return reads.read(s, netns);
          } catch {
            return null; // unreadable now: nothing live to show
          }
        });
      }
      sysctls.forEach((s, i) => live.set(`${netns}\0${s}`, values[i]));
    }
    return live;
  }

  /** With --netns, per-namespace sysctls elsewhere are not tuned (host-wide ones still are). */
  #inScope(r: Row): boolean {
    const only = this.d.opts.onlyNetns;
    return !only || r.decl.scope === "global" || r.netns === only;
  }

  #netnsField(key: string): { netns?: string } {
    const name = netnsDisplayName(key);
    return name === undefined ? {} : { netns: name };
  }

  #resolve(
    target: string,
  ): { kind: "tuner"; defs: TunerDefinition[] } | {
    kind: "sysctl";
    sysctl: string;
    defs: TunerDefinition[];
  } {
    const defs = this.d.definitions;
    // Tuner names first: bpftune's plugin names (tcp_buffer_tuner.so) contain a dot too.
    const tuner = defs.find((d) => d.name === normalizeTunerName(target));
    if (tuner) return { kind: "tuner", defs: [tuner] };
    if (/[./]/.test(target)) {
      let sysctl: string;
      try {
        sysctl = canonicalSysctlName(target);
      } catch (e) {
        throw new ControlError("bad-args", (e as Error).message);
      }
      const managers = defs.filter((d) => overrideSysctls(d).includes(sysctl));
      if (managers.length === 0) {
        const known = [...new Set(defs.flatMap((d) => overrideSysctls(d)))];
        throw new ControlError(
          "not-found",
          `no tuner manages ${sysctl}; sysctls bpfpilot tunes or watches: ${known.join(", ")}`,
        );
      }
      return { kind: "sysctl", sysctl, defs: managers };
    }
    throw new ControlError(
      "not-found",
      `no tuner or sysctl named '${target}'; tuners: ${defs.map((d) => d.name).join(", ")}`,
    );
  }
}
