/**
 * The daemon's life: claim the state directory, probe, load every tuner that can run (reporting
 * the rest), consume events until SIGINT/SIGTERM, then summarise, detach, roll back if asked and
 * exit. No single tuner, hook or event can take it down.
 */
import { type BpfpEvent, decodeEvent, EventFormatError } from "../tuning/event.ts";
import { DEFAULT_STATE_DIR, Journal, valueText } from "./journal.ts";
import { RateGate } from "./rate_gate.ts";
import { DaemonStats } from "./stats.ts";
import { liveSysctls, type SysctlIO } from "./sysctl_io.ts";
import { domainLookup } from "../tuning/domain.ts";
import { applyDecisions } from "../tuning/context.ts";
import { ProposalApplier } from "./applier.ts";
import { summaryLines, undoLines } from "./summary.ts";
import { PinnedPolicy } from "./pinned_policy.ts";
import { ConfigPolicy } from "./config_policy.ts";
import { applyOverrideLifetime, type OverrideLifetime } from "./override_lifetime.ts";
import { eventBuckets, eventsLine, type KernelCounters } from "./event_accounting.ts";
import { rollbackFromJournal, visitEachOnce } from "./rollback.ts";
import { restoreGuard } from "./restorable.ts";
import { findLostOverrides } from "./lost_overrides.ts";
import {
  isLoaded,
  type LoadedTuner,
  loadTuner,
  observedThrough,
  type UnavailableTuner,
} from "./tuner_loader.ts";
import {
  overrideSysctls,
  type TunerContext,
  type TunerDefinition,
  tunes,
} from "../tuning/tuner.ts";
import type { Logger } from "../log/logger.ts";
import { RingBufferReader } from "../libbpf/ringbuf.ts";
import { releaseKernelBtf } from "../libbpf/load.ts";
import { lib, setLibbpfLogSink } from "../libbpf/runtime.ts";
import { keepParseMemory } from "../libbpf/parse_memory.ts";
import { releaseStartupPages, residentFileKb } from "./startup_pages.ts";
import { errnoOf } from "../kernel/libc.ts";
import { type BpfMap, u32Key } from "../libbpf/map.ts";
import { probeKernel, type ProbeResult } from "../kernel/probe.ts";
import {
  describeNetns,
  heldNetnsCookie,
  netnsCookieOf,
  netnsKey,
  ownNetnsInum,
  parseNetnsKey,
  useNetnsRegistry,
} from "../kernel/netns.ts";
import { logReusedInode, recordIsForReusedInode } from "./netns_reuse.ts";
import { NetnsRegistry } from "../kernel/netns_registry.ts";
import { StartTiming } from "./start_timing.ts";
import { changeTiming as ct } from "./change_timing.ts";
import { DeferredLogSync } from "./log_sync.ts";
import { DaemonStartError } from "./start_error.ts";
import { selectTuners } from "./tuner_selection.ts";
import { daemonKeptFiles, SysctlFiles } from "../kernel/sysctl_files.ts";
import { ensureTracefs, type TracefsMount } from "../kernel/tracefs.ts";
import { type AttachKind, describeCandidate } from "../kernel/hooks.ts";
import { ANY_NETNS } from "../kernel/netns.ts";
import type { Proposal } from "../tuning/proposal.ts";
import { GLOBAL_NETNS } from "../kernel/netns.ts";
import { DaemonControlProvider, netnsDisplayName } from "./control_provider.ts";
import { type ControlServer, startControlServer } from "./control/server.ts";
import { ControlSocketError } from "./control/socket_file.ts";
import { LostEventsReads, LostEventsReporter } from "./lost_events.ts";
import { EventMutes, type Outcome } from "./event_mutes.ts";
import { bpfMuteWriter } from "./mute_writer.ts";
import {
  MetricsListenError,
  type MetricsNetns,
  type MetricsServer,
  renderMetrics,
  startMetricsServer,
} from "./metrics.ts";

export interface DaemonOptions {
  log: Logger;
  /** Every tuner this daemon may run, in load order (the CLI passes src/tuners/registry.ts). */
  tuners: readonly TunerDefinition[];
  advise: boolean;
  learningRate: number;
  rollbackOnExit: boolean;
  /** Only these tuners (normalised names); null = all. */
  allow: string[] | null;
  disable: string[];
  /** cgroup v2 directory cgroup programs attach to; null = the cgroup2 root. */
  cgroup: string | null;
  legacy: boolean;
  /** Start even when override detection or a tuner named in `allow` cannot load. */
  allowDegraded?: boolean;
  /** Try this attach kind first on every hook (testing a flavour on purpose). */
  prefer?: AttachKind | null;
  stateDir: string;
  cooldownMs?: number;
  /** Probe cache file (per boot); null disables it. */
  probeCache: string | null;
  faultInject: string[];
  /** Tune only this namespace (key, see kernel/netns.ts); host-wide sysctls still are. */
  onlyNetns?: string | null;
  io?: SysctlIO;
  /** Resolves once the daemon is up (all hooks attached), with the loaded tuners. */
  onReady?: (d: Daemon) => void | Promise<void>;
  /** Control socket path; null or absent: none (the CLI passes its default). */
  controlSocket?: string | null;
  /** Group (name or gid) allowed to use the control socket: mode 0660 instead of 0600. */
  controlGroup?: string;
  /** HOST:PORT for the OpenMetrics endpoint; null or absent: none. */
  metricsListen?: string | null;
  /** Allow a non-loopback metrics address (the endpoint has no authentication). */
  metricsAllowRemote?: boolean;
  /** Which namespaces' tunables metrics show (default changed: see MetricsNetns). */
  metricsNetns?: MetricsNetns;
  /** Where to read sysctl.d from (`root` prefix for tests); false: do not read it. */
  bootSysctls?: { root: string } | false;
  /** Let bpfpilot raise a value a sysctl.d file pins (never lower it). */
  tuneAbovePinned?: boolean;
  /** How long an admin write holds bpfpilot off (default persistent: until `enable`). */
  overrides?: OverrideLifetime;
  /**
   * Tuners in advise mode whatever `advise` says: a connection tuner's `advise-only` policy
   * (it changes no sysctl, so the proposal-by-proposal policy cannot hold it).
   */
  adviseTuners?: readonly string[];
  /** The configuration file's per-tuner/per-sysctl policy (replaced on SIGHUP by onReload). */
  policy?: ConfigPolicy;
  /** SIGHUP: re-read the configuration file (must not throw; reports on the log itself). */
  onReload?: () => void;
  /** Sees every proposal a tuner makes and whether it went through (advise: would have). */
  onProposal?: (p: Proposal, applied: boolean) => void;
  /**
   * Every repeat of an advice reaches the tuners and onProposal (the audit counts them as
   * evidence): advice does not mute its event key in the kernel (event_mutes.ts).
   */
  adviceRepeats?: boolean;
}

const TICK_MS = 1000;
/** bpfp_stats keys by slot, made once. */
const STATS_KEYS: Uint8Array[] = [];
/** Journal records of namespaces that are gone are looked for every this many ticks. */
const PRUNE_EVERY_TICKS = 30;
/**
 * Namespaces are looked for every this many ticks (NetnsRegistry.refresh: a full scan in the
 * background when something changed or a minute passed), and rescanned when one is unknown.
 */
const NETNS_SCAN_EVERY_TICKS = 10;
/**
 * The ring-buffer reader's own wait between drains when no wake-up comes: the tick drains what
 * producers submitted without one (tcp_conn's samples) each second, so the reader's timeout is
 * only a fallback and an idle daemon wakes once a second, not twice (see #tickWork).
 */
const READER_POLL_MS = 30_000;
/** BPFPILOT_CHANGE_TIMING=1: where the change path's CPU went, logged every this many ticks. */
const CHANGE_TIMING_EVERY_TICKS = 5;
/** After an uncaught error, the longest the orderly shutdown may take before exit 1. */
const FATAL_EXIT_MS = 5000;
/** Start-up pages are released this long after 'bpfpilot started' (see startup_pages.ts). */
const STARTUP_PAGES_AFTER_MS = 3000;

/**
 * Start-up steps after which BPFPILOT_FAULT_INJECT=start:<step> fails the start (to prove that
 * whatever was acquired until then is released).
 */
export const START_STEPS = ["journal", "probe", "tuners", "ringbuf", "servers"] as const;
export type StartStep = typeof START_STEPS[number];

export { DaemonStartError } from "./start_error.ts";

export class Daemon {
  readonly stats = new DaemonStats();
  readonly startedAt = new Date();
  readonly gate: RateGate;
  readonly io: SysctlIO;
  /**
   * Live values for answers (query, status, metrics): through a file the tuners keep, but
   * keeping none (a scrape reads every tunable of every namespace; tuners need the room).
   */
  readonly reportReads: SysctlIO;
  /** /proc/sys files kept open per namespace (bounded): what makes a change one visit. */
  readonly #files = new SysctlFiles({
    cookieNow: heldNetnsCookie,
    max: daemonKeptFiles(),
    onStolen: (netns, sysctl) =>
      this.log.error(
        `the /proc/sys file of ${sysctl} kept for ${describeNetns(netns)} was closed by other ` +
          `code and its number reused: not used (the access took a checked visit); please ` +
          `report this`,
      ),
  });
  journal!: Journal;
  probe!: ProbeResult;
  loaded: LoadedTuner[] = [];
  unavailable: UnavailableTuner[] = [];
  disabled: string[] = [];
  /** Boot-time sysctl.d values (null when not read). */
  pinned: PinnedPolicy | null = null;
  /** The configuration file's policy (empty without a file). */
  readonly policy: ConfigPolicy;
  /** The pid file of a background (`-D`) daemon, once written. */
  pidFile: string | null = null;
  /** The control socket and metrics endpoint, while they serve. */
  control: ControlServer | null = null;
  metricsServer: MetricsServer | null = null;
  #defs: TunerDefinition[] = [];
  #applier!: ProposalApplier;
  /** The change records' fdatasync, from the tick, off the main thread (log_sync.ts). */
  #logSync: DeferredLogSync | null = null;
  /**
   * Everything start-up acquires in the kernel (tracefs mount, each tuner's object with its
   * links, the ring buffer reader), owned here from the moment it exists and released in reverse
   * order on every exit path: failed start, stop, or a throw anywhere in between.
   */
  #owned = new DisposableStack();
  #reader: RingBufferReader | null = null;
  /** A growth on fresh evidence was applied since the reader last asked (its `prompt`). */
  #promptEvents = false;
  #tracefs: TracefsMount | null = null;
  #stop: (() => void) | null = null;
  #ticks = 0;
  /** When the tick reads each tuner's lost-event counter: after events, else now and then. */
  readonly #droppedReads = new LostEventsReads();
  /** Every namespace the daemon knows (kernel/netns_registry.ts). */
  readonly netns: NetnsRegistry;
  /** Namespaces found destroyed since the last tick: their records go in one journal write. */
  #destroyedNetns = new Set<string>();
  /** Override-detector events lost so far (a rise triggers a comparison of live values). */
  #overrideEventsLost = 0;
  readonly #lostEvents: LostEventsReporter;
  #stopped: Promise<void>;
  /** An error nothing caught (the global handler saw it): the daemon stops and exits 1. */
  #fatal: unknown = null;
  /** Sysctls read as absent (fault injection `sysctl:<name>`), to test optional tunables. */
  readonly #missingSysctls: ReadonlySet<string>;
  /** Event keys the kernel need not resend (nothing they could change): event_mutes.ts. */
  readonly mutes: EventMutes<BpfpEvent>;
  /** Each tuner object's bpfp_stats map (#statsSlots). */
  readonly #statsMaps = new WeakMap<object, BpfMap>();
  /** Outcomes of the decisions made on the event being handled (null between events). */
  #outcomes: Outcome[] | null = null;

  constructor(readonly opts: DaemonOptions) {
    this.gate = new RateGate({ cooldownMs: opts.cooldownMs });
    this.policy = opts.policy ?? new ConfigPolicy();
    const domains = domainLookup(opts.tuners);
    this.io = opts.io ?? liveSysctls(domains, this.#files);
    this.reportReads = opts.io ?? liveSysctls(domains, this.#files, { keepOpened: false });
    this.#stopped = new Promise((resolve) => this.#stop = resolve);
    this.netns = new NetnsRegistry({
      ownInum: ownNetnsInum(),
      debug: (m) => opts.log.debug(m),
      onDestroyed: (inum) => this.#destroyedNetns.add(netnsKey(inum)),
    });
    this.#lostEvents = new LostEventsReporter(opts.log, () => performance.now());
    this.#missingSysctls = new Set(
      opts.faultInject.filter((f) => f.startsWith("sysctl:")).map((f) => f.slice(7)),
    );
    this.mutes = new EventMutes(
      bpfMuteWriter(
        (tuner) => this.loaded.find((t) => t.def.name === tuner)?.object ?? null,
        (m) => opts.log.debug(m),
      ),
      { muteAdvice: opts.adviceRepeats !== true },
    );
  }

  /** A tuner handles an event; its key is muted when none of the decisions could change anything. */
  #handleEvent(t: LoadedTuner, ev: BpfpEvent): void {
    const outcomes: Outcome[] = this.#outcomes = [];
    try {
      t.instance.onEvent?.(ev);
    } finally {
      this.#outcomes = null;
    }
    const now = performance.now();
    ct
      ? ct.time("mutes", () => this.mutes.afterEvent(t.def.name, ev, outcomes, now))
      : this.mutes.afterEvent(t.def.name, ev, outcomes, now);
  }

  /** What became of a decision: recorded for the event being handled; a change unmutes. */
  #outcome(o: Outcome): void {
    if (o.kind === "changed") this.mutes.changed(o.netns);
    this.#outcomes?.push(o);
  }

  get log(): Logger {
    return this.opts.log;
  }

  /** Per-namespace or host-wide, as the tuner that manages it declares. */
  scopeOf(sysctl: string): "netns" | "global" {
    return this.#defs.flatMap((d) => d.tunables).find((t) => t.sysctl === sysctl)?.scope ??
      "netns";
  }

  /** The boot-time sysctl.d values, read at start and on SIGHUP. */
  #loadPinned(): void {
    if (this.opts.bootSysctls === false) return;
    this.pinned = new PinnedPolicy({
      tuneAbove: this.opts.tuneAbovePinned ?? false,
      scopeOf: (s) => this.scopeOf(s),
    }, this.opts.bootSysctls?.root ?? "");
    this.#reportPinned();
  }

  #reportPinned(): void {
    const p = this.pinned;
    if (!p) return;
    for (const problem of p.problems) this.log.warn(`sysctl.d: ${problem}`);
    this.log.info(
      `boot-time sysctl settings read from ${p.files.length} file(s); the values they set are ` +
        `the administrator's${this.opts.tuneAbovePinned ? " (bpfpilot may raise them)" : ""}`,
    );
  }

  /** SIGHUP: re-read what may change without a restart (state is kept). */
  reload(): void {
    this.opts.onReload?.();
    if (this.pinned) {
      this.pinned.reload();
      this.#reportPinned();
    }
    this.mutes.clearAll(); // ceilings and policies may have changed: every event is news again
    this.log.info("configuration reloaded (SIGHUP)", { event: "reloaded" });
  }

  /** Tuners that manage a sysctl, in load order. */
  managers(sysctl: string): string[] {
    return this.loaded.filter((t) => overrideSysctls(t.def).includes(sysctl))
      .map((t) => t.def.name);
  }

  /** Every tuner this daemon knows, loaded or not (empty before start). */
  get definitions(): readonly TunerDefinition[] {
    return this.#defs;
  }

  describeScenario(tuner: string, scenario: string): string {
    const def = this.#defs.find((d) => d.name === tuner);
    return def?.scenarios.find((s) => s.name === scenario)?.description ?? "";
  }

  stop(): void {
    this.#stop?.();
  }

  /** Runs until stop() (or a signal); returns the exit status. */
  async run(): Promise<number> {
    // Listen before starting: a signal during start-up must still end in a clean shutdown.
    const onSignal = () => this.stop();
    const onHangup = () => {
      try {
        this.reload();
      } catch (e) {
        this.log.error(`reload failed, the previous settings stay: ${(e as Error).message}`);
      }
    };
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
    Deno.addSignalListener("SIGHUP", onHangup);
    // A bug anywhere must not kill the daemon silently: log it, shut down the normal way (summary,
    // detach, rollback with -R) and exit 1; if that hangs, exit 1 anyway.
    const onUncaught = (e: Event) => {
      e.preventDefault();
      const err = (e as PromiseRejectionEvent).reason ?? (e as ErrorEvent).error;
      if (this.#fatal !== null) return;
      this.#fatal = err ?? "unknown error";
      this.log.error(
        `internal error: ${err instanceof Error ? err.message : String(err)}; stopping` +
          (this.opts.rollbackOnExit ? " and restoring the original values" : ""),
      );
      this.stop();
      Deno.unrefTimer(setTimeout(() => Deno.exit(1), FATAL_EXIT_MS));
    };
    globalThis.addEventListener("unhandledrejection", onUncaught);
    globalThis.addEventListener("error", onUncaught);
    try {
      try {
        await this.#start();
      } catch (e) {
        await this.#closeServers();
        this.#teardown();
        try {
          this.journal?.close();
        } catch { /* the start's own error is the one to report */ }
        throw e;
      }
      const tick = setInterval(() => this.#tick(), TICK_MS);
      const loop = this.#reader?.start();
      await this.#stopped;
      clearInterval(tick);
      await this.#reader?.stop();
      await loop;
      await this.#closeServers();
      await this.#logSync?.settled(); // the journal's close syncs the rest
      await this.#finish();
      return this.#fatal === null ? 0 : 1;
    } finally {
      globalThis.removeEventListener("unhandledrejection", onUncaught);
      globalThis.removeEventListener("error", onUncaught);
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
      Deno.removeSignalListener("SIGHUP", onHangup);
    }
  }

  async #start(): Promise<void> {
    const { log } = this.opts;
    const timing = new StartTiming();
    // Loading and compiling the bundle touched ~35 MB of the runtime's code that the rest of the
    // start does not run: given back first, before the journal, the namespaces and sysctl.d touch
    // more (the pages still used come back: 35-80 ms from the daemon's own runtime copy, for 19 MB
    // less peak with the release before the loads). The figures: docs/performance-history.md,
    // "Peak RSS" and "The releases during the start, priced".
    this.#releaseStartupPages("before the journal");
    setLibbpfLogSink((level, line) => {
      if (level === "debug") log.debug(line);
      else log.debug(line, { libbpf: level });
    });
    // Verified cookies: an override of a dead namespace must not silence a new one that took its
    // inode before the registry noticed (see Journal.isOverridden); unknown while no path leads
    // to the namespace (then its overrides hold, and a new one waits: Journal.markOverride).
    // A new entry takes the learnt cookie (no visit): the write that follows checks it.
    this.journal = Journal.open(this.opts.stateDir, {
      netnsCookie: (key) => netnsCookieOf(key, { verify: true }),
      entryNetnsCookie: (key) => netnsCookieOf(key),
      warn: (m) => log.warn(m),
      foldInBackground: true, // its fsyncs never stall the events
    });
    this.journal.claimDaemon();
    this.#logSync = new DeferredLogSync(
      this.journal,
      (e) => log.error(`syncing the journal failed: ${(e as Error).message}`),
    );
    applyOverrideLifetime(this.journal, this.opts.overrides ?? "persistent", log);
    this.#checkpoint("journal");
    timing.mark("journal");
    useNetnsRegistry(this.netns);
    this.netns.discover();
    // Before any tuning: records of namespaces gone, or whose inode a new namespace took.
    this.#pruneGoneNamespaces();
    timing.mark("namespaces", `${this.netns.size} besides its own`);
    this.#applier = new ProposalApplier({
      journal: this.journal,
      gate: this.gate,
      io: this.io,
      log,
      stats: this.stats,
      advise: this.opts.advise,
      now: () => performance.now(),
      describe: (t, s) => this.describeScenario(t, s),
      onlyNetns: this.opts.onlyNetns ?? null,
      scopeOf: (sysctl) => this.scopeOf(sysctl),
      refusal: (p) => this.pinned?.refusal(p) ?? null,
      policy: this.policy,
      outcome: (o) => this.#outcome(o),
      heldCookie: heldNetnsCookie,
    });
    this.#loadPinned();

    const all = [...this.opts.tuners];
    this.#defs = all;
    const selected = selectTuners(all, {
      disable: this.opts.disable,
      allow: this.opts.allow,
      faultInject: this.opts.faultInject,
    }, log);
    this.disabled.push(...selected.disabled);
    this.unavailable.push(...selected.unavailable);
    const runnable = selected.runnable;
    // A tuner's availability may read the kernel's BTF (route_table before 6.3): not held through
    // the probe's and the loads' own parses.
    releaseKernelBtf();
    // Each object's load parses the kernel's BTF, and so does each probe program aimed at a BTF
    // target (a cold probe loads a dozen): each parse reuses the memory of the one before.
    const releaseParseMemory = this.#owned.adopt(keepParseMemory(lib().libc), (r) => r());
    this.probe = probeKernel(
      runnable.map((d) => ({ tuner: d.name, hooks: d.hooks, object: d.object })),
      {
        legacy: this.opts.legacy,
        prefer: this.opts.prefer ?? null,
        cacheFile: this.opts.probeCache,
        verify: false, // loadTuner below falls back along the chains itself
      },
    );
    this.#checkpoint("probe");
    timing.mark("sysctl.d and probe");
    if (!this.probe.features.btf) {
      log.warn("the kernel has no BTF (CONFIG_DEBUG_INFO_BTF): only hooks that need none can load");
    }
    const loadMs = this.#loadTuners(runnable);
    this.#refuseDegraded();
    if (!this.loaded.some((t) => tunes(t.def))) {
      log.error("no tuning tuner could start: bpfpilot only watches for admin changes now");
    }

    this.#checkpoint("tuners");
    timing.mark("tuners", `loaded and attached one by one: ${loadMs.join(", ")}`);
    releaseKernelBtf(); // if a load read it (loadObject's target checks)
    releaseParseMemory();
    this.#reader = this.#startReader();
    this.#checkpoint("ringbuf");
    timing.mark("ring buffers");
    await this.#startServers();
    this.#checkpoint("servers");
    timing.mark("servers");
    log.info(
      `bpfpilot started (${this.loaded.length} tuners, support level ${this.level}` +
        `${this.opts.advise ? ", advise mode: nothing will be changed" : ""})`,
      { event: "started" },
    );
    if (Deno.env.get("BPFPILOT_START_TIMING") === "1") log.info(timing.describe());
    else log.debug(timing.describe());
    // The ring buffers and the servers touched ~10 MB more of the runtime's code, mostly once.
    this.#releaseStartupPages("once started");
    this.#releaseStartupPagesSoon();
    await this.opts.onReady?.(this);
    if (this.opts.faultInject.includes("daemon:uncaught")) {
      // Test switch: an error nothing catches, to exercise the global handler.
      setTimeout(() => Promise.reject(new Error("injected uncaught error")), 100);
    }
  }

  /**
   * Loads and attaches each runnable tuner, one by one (loaded, or unavailable with its reason);
   * refuses a start where none could. Returns each object's load time, for the start's account.
   */
  #loadTuners(runnable: readonly TunerDefinition[]): string[] {
    const { log } = this.opts;
    const cgroup = this.opts.cgroup ?? this.probe.features.cgroup2;
    const fault = new Set(this.opts.faultInject);
    const choicesOf = (def: TunerDefinition) =>
      this.probe.choices.filter((c) => c.tuner === def.name);
    // One by one on this thread: worker threads each fault in their own copy (glibc arenas) and
    // keep it after (malloc_trim cannot shrink their heaps), for a few tens of ms less in all.
    const loadMs: string[] = [];
    // What the journal, sysctl.d and the probe ran (RssFile back from ~7 to ~20 MB) goes too:
    // the loads add libbpf's BTF parse (11 MB at once) on top of whatever is resident then.
    this.#releaseStartupPages("before the tuner loads");
    for (const def of runnable) {
      const t0 = performance.now();
      const r = loadTuner(def, choicesOf(def), () => def.create(this.#context(def)), {
        cgroup,
        faultInject: fault,
        beforeAttach: (c) => {
          if (c.kind === "tracepoint" && !this.#tracefs) {
            this.#tracefs = this.#owned.adopt(ensureTracefs(), (m) => m.release());
          }
        },
      });
      if (def.object) loadMs.push(`${def.name} ${(performance.now() - t0).toFixed(0)}`);
      if (isLoaded(r)) {
        this.loaded.push(r);
        this.#owned.defer(() => {
          try {
            r.instance.stop?.();
          } finally {
            r.object?.close();
          }
        });
        const hooks = observedThrough(r, true);
        log.info(
          `tuner ${def.name}: ${this.#advising(def.name) ? "advising" : "active"}; ${hooks}`,
          { event: "tuner_active", tuner: def.name, hooks: r.attached },
        );
        for (const m of r.missing) {
          const instead = def.hooks.find((h) => h.name === m.hook)?.fallback;
          log.warn(
            `tuner ${def.name}: optional hook ${m.hook} unavailable: ${m.reason}` +
              (instead ? `; instead: ${instead}` : ""),
          );
        }
      } else {
        this.unavailable.push(r);
        log.warn(`tuner ${def.name} is unavailable: ${r.reason}`, {
          event: "tuner_unavailable",
          tuner: def.name,
          reason: r.reason,
        });
      }
    }
    if (this.loaded.length === 0) {
      throw new DaemonStartError(
        "no tuner could start on this kernel (see the reasons above; `bpfpilot support` shows " +
          "every hook)",
      );
    }
    return loadMs;
  }

  /** The ring buffer reader of every loaded tuner's events, owned from here on. */
  #startReader(): RingBufferReader {
    const { log } = this.opts;
    // One journal batch per wake-up: one lock, and the records of its changes in as few appends
    // and syncs as their order allows.
    const batch = (drain: () => number) =>
      this.#inJournalBatch("recording the events' changes", drain);
    const ctWake = ct; // an import is not narrowed inside a closure
    const reader = this.#owned.adopt(
      new RingBufferReader({
        onHandlerError: (e) => log.error(`event handler failed: ${(e as Error).message}`),
        // A stream of events is drained by the tick, in its batch (see #tickWork).
        paced: true,
        // ...except after a growth on fresh evidence: the next event (the socket at the new max)
        // is read at its wake-up (RingBufferReader's `prompt`).
        prompt: () => {
          const prompt = this.#promptEvents;
          this.#promptEvents = false;
          return prompt;
        },
        pollMs: READER_POLL_MS,
        // A drain from the tick joins the tick's journal batch (batches nest; see #tickWork).
        around: (drain) => ctWake ? ctWake.time("wake-up", () => batch(drain)) : batch(drain),
      }),
      (r) => r.close(),
    );
    for (const t of this.loaded) {
      if (!t.object) continue;
      const counters = this.stats.tunerEvents(t.def.name);
      const decode = (bytes: Uint8Array): BpfpEvent | null => {
        let ev;
        try {
          ev = decodeEvent(bytes);
        } catch (e) {
          counters.decodeErrors++;
          if (counters.decodeErrors === 1 && e instanceof EventFormatError) {
            log.error(`tuner ${t.def.name}: ${e.message}`);
          }
          return null;
        }
        counters.events++;
        counters.folded += Math.max(0, ev.count - 1);
        this.netns.observe(ev.netns, ev.pid);
        return ev;
      };
      reader.add(t.object.map("bpfp_events"), (bytes) => {
        const ev = ct ? ct.time("decode", () => decode(bytes)) : decode(bytes);
        if (ev) ct ? ct.time("event", () => this.#handleEvent(t, ev)) : this.#handleEvent(t, ev);
      });
    }
    return reader;
  }

  /**
   * A few seconds after start, when the first polls and compiles are done, the pages only the
   * start needed go back to the system (see startup_pages.ts): about 30 MB of the Deno
   * executable's code and data.
   */
  #releaseStartupPagesSoon(): void {
    const timer = setTimeout(
      () => this.#releaseStartupPages(`${STARTUP_PAGES_AFTER_MS / 1000} s after start`),
      STARTUP_PAGES_AFTER_MS,
    );
    Deno.unrefTimer(timer);
    this.#owned.defer(() => clearTimeout(timer));
  }

  #releaseStartupPages(when: string): void {
    const t0 = performance.now();
    const libc = lib().libc;
    // RssFile before and after is for the debug line only: not read when it is not written.
    const debug = this.log.debugEnabled;
    const before = debug ? residentFileKb() : null;
    const r = releaseStartupPages(libc, () => errnoOf(libc));
    if (!debug) return;
    const after = residentFileKb();
    const mb = (kb: number | null) => kb === null ? "?" : (kb / 1024).toFixed(1);
    this.log.debug(
      `start-up pages released ${when}: ${r.mappings} read-only file mappings ` +
        `(${(r.advisedBytes / 2 ** 20).toFixed(0)} MB) advised out in ` +
        `${(performance.now() - t0).toFixed(1)} ms, RssFile ${mb(before)} -> ${mb(after)} MB` +
        (r.refused === null ? "" : `; the kernel refused some (errno ${r.refused})`),
    );
  }

  /**
   * Without override detection the daemon would overwrite the administrator's values; a tuner the
   * user named with -a is what they asked for. Either missing is a start error unless accepted.
   */
  #refuseDegraded(): void {
    // In advise mode nothing is written, so nothing of the administrator's can be overwritten.
    // A tuner with nothing to do on this kernel (route_table on 6.3+) is not a failure to load.
    const missing = this.unavailable.filter((u) =>
      (u.def.alwaysOn === true && !this.opts.advise) ||
      (!u.nothingToDo && (this.opts.allow?.includes(u.def.name) ?? false))
    );
    if (missing.length === 0 || this.opts.allowDegraded) return;
    const what = missing.map((u) =>
      u.def.alwaysOn === true
        ? `admin-override detection (tuner sysctl: ${u.reason})`
        : `tuner ${u.def.name} (${u.reason})`
    ).join("; ");
    throw new DaemonStartError(
      `refusing to start without ${what}: without it bpfpilot would ${
        missing.some((u) => u.def.alwaysOn === true)
          ? "overwrite values the administrator sets"
          : "not do what was asked"
      }. Fix the cause (\`bpfpilot support\` shows every hook), or start anyway with ` +
        `--allow-degraded`,
    );
  }

  /**
   * The support level that is true of this daemon: the probe's, lowered to "legacy" when
   * admin-override detection or a tuner named with -a did not load (accepted with
   * --allow-degraded), or a loaded tuner misses a hook without a fallback. Other tuners that cannot run here are
   * reported on their own and do not change it.
   */
  get level(): string {
    // A missing hook that declares a fallback (ip_frag's poll) still does the hook's job.
    const lacks = (t: LoadedTuner) =>
      t.missing.some((m) => !t.def.hooks.find((h) => h.name === m.hook)?.fallback);
    const degraded =
      this.unavailable.some((u) =>
        u.def.alwaysOn === true || (this.opts.allow?.includes(u.def.name) ?? false)
      ) || this.loaded.some(lacks);
    return degraded && this.probe.level === "full" ? "legacy" : this.probe.level;
  }

  #advising(tuner: string): boolean {
    return this.opts.advise || (this.opts.adviseTuners?.includes(tuner) ?? false);
  }

  #context(def: TunerDefinition): TunerContext {
    const log = this.opts.log.child({ tuner: def.name });
    /** A live value once any change of it waiting was written (flushFor); null when unreadable. */
    const readFlushed = (sysctl: string, netns: string): number[] | null => {
      if (this.#missingSysctls.has(sysctl)) return null;
      try {
        return this.io.read(sysctl, netns);
      } catch (e) {
        log.debug(`cannot read ${sysctl}: ${(e as Error).message}`);
        return null;
      }
    };
    const ctx: TunerContext = {
      log,
      learningRate: this.opts.learningRate,
      advise: this.#advising(def.name),
      read: (sysctl, netns) => {
        this.#applier.flushFor(netns, [sysctl]); // a change of it waiting: written first
        return readFlushed(sysctl, netns);
      },
      readMany: (sysctls, netns) => {
        this.#applier.flushFor(netns, sysctls);
        // Each on its own (a failure logged): fault injection, or the visit failed.
        const oneByOne = () => sysctls.map((s) => readFlushed(s, netns));
        if (!this.io.readMany || sysctls.some((s) => this.#missingSysctls.has(s))) {
          return oneByOne();
        }
        try {
          return this.io.readMany(sysctls, netns);
        } catch {
          return oneByOne();
        }
      },
      propose: (p) => this.#propose(p),
      atCeiling: (sysctl, netns, value, ceiling) =>
        this.#applier.atCeiling(def.name, sysctl, netns, value, ceiling),
      needsMore: (sysctl, netns, need) =>
        this.#outcome({ kind: "needs-more", netns, sysctl, need }),
      watchedNetns: () => [this.opts.onlyNetns ?? GLOBAL_NETNS],
      faultInjected: (fault) => this.opts.faultInject.includes(fault),
      now: () => performance.now(),
      managers: (sysctl) => this.managers(sysctl),
      managedSysctls: () => [
        ...new Set(
          this.#defs.filter((d) => !this.disabled.includes(d.name))
            .flatMap((d) => overrideSysctls(d)),
        ),
      ],
      isOwnRecentWrite: (sysctl, values) => this.#applier.isOwnRecentWrite(sysctl, values),
      tunerOverridden: (netns) => {
        const taken = this.#tunerOverridden(def.name, netns);
        if (taken) this.#outcome({ kind: "overridden", netns });
        return taken;
      },
      takenOverIn: () =>
        this.journal.overrides().filter((o) => o.tuner === def.name)
          .map(({ netns, sysctl }) => ({ netns, sysctl })),
      overridesVersion: () => this.journal.overridesVersion(),
      onlyNetns: this.opts.onlyNetns ?? null,
      markOverride: (o) => {
        this.journal.markOverride(o);
        this.gate.forget(o.netns, o.sysctl);
        this.mutes.changed(o.netns, o.netns === ANY_NETNS); // the admin's write changed the value
      },
      apply: (decisions, netns) => applyDecisions(ctx, def.name, decisions, netns),
      coolingDownUntil: (sysctl, netns) => this.#applier.coolingDownUntil(sysctl, netns),
    };
    return ctx;
  }

  #tunerOverridden(tuner: string, netns: string): boolean {
    return this.journal.isTunerOverridden(netns, tuner) ||
      this.journal.isTunerOverridden(ANY_NETNS, tuner);
  }

  /** `enable` over the control socket cleared overrides (the state directory's: next tick). */
  overridesEnded(): void {
    this.#unmuteEndedOverrides();
  }

  /** Keys muted for overrides that ended (`enable`, from the socket or the state directory). */
  #unmuteEndedOverrides(): void {
    if (!this.mutes.heldByOverrides) return;
    this.mutes.recheckOverrides(
      (c) =>
        c.sysctl === undefined
          ? this.#tunerOverridden(c.tuner, c.netns)
          : this.journal.isOverridden(c.netns, c.sysctl),
      (tuner, ev) => {
        const t = this.loaded.find((x) => x.def.name === tuner);
        if (!t) return;
        this.stats.tunerEvents(tuner).rehandled++;
        this.#handleEvent(t, ev);
      },
    );
  }

  #propose(p: Proposal): boolean {
    const applied = this.#applier.propose(p);
    if (applied && p.fresh === true) this.#promptEvents = true;
    try {
      this.opts.onProposal?.(p, applied);
    } catch (e) {
      this.log.error(`proposal observer failed: ${(e as Error).message}`);
    }
    return applied;
  }

  /** Control socket and metrics endpoint; either failing to start is a start error. */
  async #startServers(): Promise<void> {
    const { log } = this.opts;
    const provider = new DaemonControlProvider(this);
    const onError = (m: string) => log.error(m);
    const path = this.opts.controlSocket;
    if (path) {
      try {
        this.control = await startControlServer({
          provider,
          path,
          group: this.opts.controlGroup,
          onError,
        });
      } catch (e) {
        if (e instanceof ControlSocketError) throw new DaemonStartError(e.message);
        throw e;
      }
      const rootPath = this.control.rootPath;
      log.info(
        `control socket ${path}${rootPath ? ` (root's own: ${rootPath})` : ""} ` +
          `(try: bpfpilot query help --socket ${path})`,
      );
    }
    const listen = this.opts.metricsListen;
    if (listen) {
      try {
        this.metricsServer = startMetricsServer(
          listen,
          async () => renderMetrics(await provider.metrics()),
          { allowNonLoopback: this.opts.metricsAllowRemote, onError },
        );
      } catch (e) {
        if (e instanceof MetricsListenError) throw new DaemonStartError(e.message);
        throw e;
      }
      const { hostname, port } = this.metricsServer;
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      log.info(`metrics at http://${host}:${port}/metrics`);
    }
  }

  async #closeServers(): Promise<void> {
    const control = this.control, metrics = this.metricsServer;
    this.control = this.metricsServer = null;
    await Promise.allSettled([control?.close(), metrics?.close()]);
  }

  /**
   * `fn` as one journal batch whose changes are written at its end, after one append of all
   * their records (ProposalApplier.deferWrites); a failure to append the batch's last records
   * (writes that were made: the journal has them as pending, which rollback restores all the
   * same) is logged.
   */
  #inJournalBatch<T>(what: string, fn: () => T): T {
    let done: { result: T } | null = null;
    try {
      return this.journal.batch(() =>
        this.#applier.deferWrites(() => (done = { result: fn() }).result)
      );
    } catch (e) {
      if (!done) throw e;
      this.log.error(`${what} in the journal failed: ${(e as Error).message}`);
      return (done as { result: T }).result;
    }
  }

  #tick(): void {
    const tick = () => this.#inJournalBatch("the periodic work's changes", () => this.#tickWork());
    ct ? ct.time("tick", tick) : tick();
    // After the batch: its events' writes are made; the sync itself runs off the main thread.
    this.#logSync?.tick(performance.now());
    if (ct && this.#ticks % CHANGE_TIMING_EVERY_TICKS === 0) {
      this.log.info(ct.report(CHANGE_TIMING_EVERY_TICKS * TICK_MS / 1000));
    }
  }

  #tickWork(): void {
    // A stream of events (the reader is paced) is drained here: its changes and the tick's share
    // this batch's lock and fdatasync, one a second while the stream lasts.
    // Else (no stream waited, or it ended) what producers submitted without a wake-up.
    try {
      ct ? ct.time("tick drain", () => this.#drain()) : this.#drain();
    } catch (e) {
      this.log.error(`draining the events failed: ${(e as Error).message}`);
    }
    this.#ticks++;
    ct ? ct.time("tick mutes+netns", () => this.#tickMutesNetns()) : this.#tickMutesNetns();
    if (this.#ticks % PRUNE_EVERY_TICKS === 1 || this.#destroyedNetns.size > 0) {
      ct ? ct.time("tick prune", () => this.#pruneGoneNamespaces()) : this.#pruneGoneNamespaces();
    }
    for (const t of this.loaded) {
      ct ? ct.time(`tick ${t.def.name}`, () => this.#tunerTick(t)) : this.#tunerTick(t);
      const ev = this.stats.tunerEvents(t.def.name);
      if (!this.#droppedReads.due(t.def.name, ev.events + ev.decodeErrors, this.#ticks)) continue;
      const dropped = ct
        ? ct.time("tick dropped", () => this.#droppedEvents(t))
        : this.#droppedEvents(t);
      if (dropped !== null) {
        this.stats.tunerEvents(t.def.name).dropped = dropped;
        this.#lostEvents.observe(t.def.name, dropped);
      }
      if (dropped !== null && t.def.alwaysOn === true && dropped > this.#overrideEventsLost) {
        this.#overrideEventsLost = dropped;
        this.#recoverLostOverrides();
      }
    }
  }

  #drain(): void {
    if (this.#reader && this.#reader.pacedDrain() === 0) this.#reader.consume();
  }

  #tickMutesNetns(): void {
    if (this.#ticks % NETNS_SCAN_EVERY_TICKS === 0) this.netns.refresh();
    this.mutes.pruneExpired(performance.now());
    try {
      // Overrides noted while their namespace could not be identified: recorded once it is.
      this.journal.placePendingOverrides();
    } catch (e) {
      this.log.error(`recording overrides failed: ${(e as Error).message}`);
    }
    try {
      this.#unmuteEndedOverrides();
    } catch (e) {
      this.log.error(`checking for ended overrides failed: ${(e as Error).message}`);
    }
    this.netns.tick();
  }

  #tunerTick(t: LoadedTuner): void {
    try {
      t.instance.onTick?.();
    } catch (e) {
      this.log.error(`tuner ${t.def.name}: periodic work failed: ${(e as Error).message}`);
    }
  }

  /**
   * Journal records and rate-gate state of namespaces that are gone (see Journal.pruneNetns):
   * those a scan found destroyed, and those the registry does not know (records from before a
   * restart).
   */
  #pruneGoneNamespaces(): void {
    const destroyed = this.#destroyedNetns;
    this.#destroyedNetns = new Set();
    this.#files.forgetNetns(destroyed);
    this.gate.forgetNetns(destroyed);
    this.mutes.forgetNetns(destroyed); // their inodes may come back as other namespaces'

    this.stats.forgetNetns(destroyed);
    // At start (before the applier and the tuners) nothing was seen of any namespace yet.
    if (destroyed.size > 0 && this.#applier) {
      this.#applier.forgetNetns(destroyed);
      for (const t of this.loaded) {
        try {
          t.instance.onNetnsGone?.(destroyed);
        } catch (e) {
          this.log.error(
            `tuner ${t.def.name}: forgetting namespaces failed: ${(e as Error).message}`,
          );
        }
      }
    }
    try {
      const n = this.journal.pruneNetns((key, cookie) => {
        const inum = parseNetnsKey(key);
        if (inum === null) return false;
        if (!this.netns.knows(inum)) return true;
        const live = cookie === undefined ? null : netnsCookieOf(key);
        if (recordIsForReusedInode(cookie, live)) {
          logReusedInode(this.log, key);
          return true;
        }
        // A destroyed inode's record goes, unless its cookie is the new namespace's there.
        return destroyed.has(key) && live === null;
      });
      if (n > 0) this.log.info(`forgot ${n} journal record(s) of network namespaces that are gone`);
    } catch (e) {
      this.log.error(`pruning the journal failed: ${(e as Error).message}`);
    }
  }

  /** Admin writes whose events were lost: any value we wrote that is no longer live. */
  #recoverLostOverrides(): void {
    const found = findLostOverrides(
      this.journal.changedEntries(),
      (netns, sysctl) => this.journal.isOverridden(netns, sysctl),
      (netns, sysctl) => this.io.read(sysctl, netns),
    );
    for (const o of found) {
      for (const tuner of this.managers(o.sysctl)) {
        this.log.notice(
          `sysctl '${o.sysctl}' that tuner '${tuner}' uses was changed by someone else ` +
            `(override events were lost; now ${valueText(o.live)}); no longer tuning it in ` +
            `${describeNetns(o.netns)} (run 'bpfpilot enable ${o.sysctl}' to resume)`,
          { event: "override_detected", tuner, sysctl: o.sysctl, netns: o.netns },
        );
        this.journal.markOverride({
          netns: o.netns,
          sysctl: o.sysctl,
          tuner,
          pid: 0,
          comm: "unknown (its event was lost)",
        });
        this.gate.forget(o.netns, o.sysctl);
      }
    }
  }

  /** The BPF side's per-CPU counters (bpf/include/bpfpilot.h enum bpfp_stat), summed. */
  kernelCounters(t: Pick<LoadedTuner, "object">): KernelCounters | null {
    return this.#statsSlots(t, (at) => {
      // Outcomes first, hits last: each outcome is counted after its hit (event_accounting.ts).
      const emitted = at(1), suppressed = at(2), dropped = at(3), skipped = at(4), muted = at(5);
      return { hits: at(0), emitted, suppressed, dropped, skipped, muted };
    });
  }

  /** KernelCounters.dropped alone: what every tick needs (one map lookup, not six). */
  #droppedEvents(t: Pick<LoadedTuner, "object">): number | null {
    return this.#statsSlots(t, (at) => at(3));
  }

  /** Reads a tuner's bpfp_stats slots (summed over CPUs) through `read`; null when it cannot. */
  #statsSlots<T>(t: Pick<LoadedTuner, "object">, read: (at: (slot: number) => number) => T) {
    if (!t.object) return null;
    try {
      // Found once per object: the tick reads every tuner's counters each second.
      let m = this.#statsMaps.get(t.object);
      if (!m) this.#statsMaps.set(t.object, m = t.object.map("bpfp_stats"));
      const stats = m;
      return read((slot) => Number(stats.sumU64(STATS_KEYS[slot] ??= u32Key(slot))));
    } catch {
      return null;
    }
  }

  mutedHits(tuner: string): number | null {
    const t = this.loaded.find((x) => x.def.name === tuner);
    return t ? this.kernelCounters(t)?.muted ?? null : null;
  }

  /** Summary, detach, rollback: in that order, each step independent of the others' failures. */
  async #finish(): Promise<void> {
    const { log } = this.opts;
    for (const t of this.loaded) {
      for (
        const line of summaryLines(
          t.def.name,
          this.stats,
          (s) => this.describeScenario(t.def.name, s),
          this.#advising(t.def.name),
        )
      ) log.info(line, { event: "summary", tuner: t.def.name });
      for (const line of t.instance.summary?.() ?? []) {
        log.info(line, { event: "summary", tuner: t.def.name });
      }
      const k = this.kernelCounters(t);
      if (k) {
        const ev = this.stats.tunerEvents(t.def.name);
        const buckets = eventBuckets(k);
        log.info(eventsLine(t.def.name, buckets, ev.events), {
          event: "summary",
          tuner: t.def.name,
          ...buckets,
          events: ev.events,
        });
      }
    }
    const undo = undoLines(this.stats, {
      advise: this.opts.advise,
      rollbackOnExit: this.opts.rollbackOnExit,
      stateDir: this.opts.stateDir === DEFAULT_STATE_DIR ? null : this.opts.stateDir,
      netnsName: (key) => netnsDisplayName(key),
    });
    for (const line of undo) log.info(line, { event: "summary" });
    this.#teardown();
    if (this.opts.rollbackOnExit && !this.opts.advise) {
      try {
        // Cookies read inside each namespace (the registry may hold a dead one's until its
        // scan), in the visit that reads its values.
        const visits = visitEachOnce(this.journal, this.io);
        rollbackFromJournal(
          this.journal,
          visits.io,
          log,
          restoreGuard(this.opts.tuners),
          visits.liveCookie,
        );
      } catch (e) {
        log.error(`rollback failed: ${(e as Error).message}`);
      }
    }
    try {
      // A fold in flight finishes, and the last fold's disk work runs off the main thread.
      await this.journal?.closeInBackground();
    } catch (e) {
      log.error(`closing the journal: ${(e as Error).message}`);
    }
    this.#files.closeAll();
    log.info("bpfpilot stopped", { event: "stopped" });
  }

  #teardown(): void {
    try {
      this.#owned.dispose();
    } catch (e) {
      this.log.debug(`releasing resources: ${(e as Error).message}`);
    }
    this.#reader = null;
    this.#tracefs = null;
  }

  #checkpoint(step: StartStep): void {
    if (this.opts.faultInject.includes(`start:${step}`)) {
      throw new DaemonStartError(
        `start-up step '${step}' failed: fault injected by BPFPILOT_FAULT_INJECT`,
      );
    }
  }

  /** For `support`-style reporting of what happened at start. */
  hookReport(): string[] {
    return this.probe.choices.map((c) =>
      `${c.tuner}/${c.hook}: ${c.chosen ? `${c.chosen} ${c.target}` : "none"}` +
      (c.chosen
        ? ""
        : ` (${c.tried.map((t) => `${describeCandidate(t)}: ${t.reason}`).join("; ")})`)
    );
  }
}
