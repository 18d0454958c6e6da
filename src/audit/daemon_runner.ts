/**
 * The audit's observation window, run by the real daemon in advise mode: the same probing,
 * hooks, tuners and decision rules as `bpfpilot run`, but nothing is written. It uses a state
 * directory of its own (removed afterwards) and no control socket, so it runs fine next to a
 * daemon service; its log lines are kept, not printed, and only quoted when it fails.
 */
import { Daemon, DaemonStartError } from "../daemon/daemon.ts";
import { parseLearningRate } from "../tuning/learning_rate.ts";
import type { Proposal } from "../tuning/proposal.ts";
import { TUNERS } from "../tuners/registry.ts";
import { LibbpfUnavailableError } from "../libbpf/loader.ts";
import { GLOBAL_NETNS } from "../kernel/netns.ts";
import { netnsDisplayName } from "../daemon/control_provider.ts";
import { observedThrough } from "../daemon/tuner_loader.ts";
import { createLogger } from "../log/logger.ts";
import { type ConnectionAdvice, tunes } from "../tuning/tuner.ts";
import {
  type AdviceProposal,
  type AdviceResult,
  type AdviseRunner,
  OBSERVED_TUNERS,
  type TunerAdviceStatus,
} from "./advise.ts";

export interface DaemonRunnerOptions {
  /** Observe only this namespace (key, see kernel/netns.ts): proposals elsewhere, host-wide
   * ones included, are left out. */
  onlyNetns?: string | null;
  /**
   * cgroup v2 directory the connection tuners' programs attach to, as `bpfpilot run -c`
   * (default: the cgroup2 root). In advise mode they only observe.
   */
  cgroup?: string | null;
  /** 0..4 as `bpfpilot run -r` (default 4). */
  learningRate?: number;
  legacy?: boolean;
  /** Where the temporary state directory goes (default: the system's temp directory). */
  tempDir?: string;
  /** Receives every daemon log line (tests, --debug); they are never printed otherwise. */
  onLogLine?: (line: string) => void;
}

/** Log lines quoted when the window fails. */
const KEPT_LINES = 20;
const PROGRESS_MS = 250;

/** The name a finding carries for a namespace: "host" for the daemon's own. */
export function auditNetnsName(key: string): string {
  return key === GLOBAL_NETNS ? "host" : netnsDisplayName(key) ?? key;
}

/**
 * Counts proposals per distinct change. The daemon coalesces a repeated proposal (it is
 * applied, or in advise mode logged, once), so repeats are counted here, before that: how often
 * a tuner wanted the change is the evidence.
 */
export class ProposalCollector {
  readonly #changes = new Map<string, AdviceProposal>();

  constructor(private readonly onlyNetns: string | null = null) {}

  add(p: Proposal, applied: boolean): void {
    if (this.onlyNetns !== null && p.netns !== this.onlyNetns) return;
    const key = [p.tuner, p.netns, p.sysctl, p.from.join(" "), p.to.join(" ")].join("\0");
    const seen = this.#changes.get(key);
    if (seen) seen.count++;
    else if (applied) this.#changes.set(key, { ...p, from: [...p.from], to: [...p.to], count: 1 });
  }

  proposals(): AdviceProposal[] {
    return [...this.#changes.values()].map((p) => ({ ...p, netns: auditNetnsName(p.netns) }));
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

function tunerStatuses(d: Daemon): TunerAdviceStatus[] {
  const out: TunerAdviceStatus[] = [];
  // The sysctl tuner only notices the administrator's writes: nothing to observe for advice.
  for (const t of d.loaded) {
    if (!tunes(t.def)) continue;
    const missing = t.missing.map((m) => m.hook).join(", ");
    out.push({
      tuner: t.def.name,
      status: "active",
      reason: `hooks: ${observedThrough(t, false)}${
        missing ? `; without optional ${missing}` : ""
      }`,
    });
  }
  for (const u of d.unavailable) {
    out.push({ tuner: u.def.name, status: "unavailable", reason: u.reason });
  }
  for (const name of OBSERVED_TUNERS) {
    if (out.some((t) => t.tuner === name)) continue;
    const known = d.definitions.some((def) => def.name === name);
    out.push({
      tuner: name,
      status: "unavailable",
      reason: known ? "did not start" : `this bpfpilot version has no ${name} tuner yet`,
    });
  }
  return out;
}

/**
 * The connection tuners' per-path advice as the window ends (read before the daemon stops and
 * its tuners are gone), limited to --netns's namespace, namespaces named as findings name them.
 */
export function connectionAdvice(
  d: Pick<Daemon, "loaded">,
  onlyNetns: string | null,
): ConnectionAdvice[] {
  return d.loaded.flatMap((t) => {
    try {
      return t.instance.connectionAdvice?.() ?? [];
    } catch {
      return []; // a tuner that cannot say leaves no advice, not a failed audit
    }
  }).filter((a) => onlyNetns === null || a.netns === onlyNetns)
    .map((a) => ({ ...a, netns: auditNetnsName(a.netns) }));
}

/** Why no window could run, when it is the machine's limitation rather than a failure. */
function unavailableReason(e: unknown, d: Daemon): string | null {
  if (e instanceof LibbpfUnavailableError) return e.message;
  if (!(e instanceof DaemonStartError)) return null;
  if (d.unavailable.length === 0) return e.message;
  return "no tuner could start on this kernel: " +
    d.unavailable.map((u) => `${u.def.name}: ${u.reason}`).join("; ") +
    " (`bpfpilot support` shows every hook)";
}

/** An AdviseRunner that runs the daemon in advise mode for the window. Needs root. */
export function daemonAdviseRunner(options: DaemonRunnerOptions = {}): AdviseRunner {
  return async ({ durationMs, onProgress, signal }): Promise<AdviceResult> => {
    const stateDir = Deno.makeTempDirSync({ prefix: "bpfpilot-audit-", dir: options.tempDir });
    const kept: string[] = [];
    const log = createLogger({
      target: "stderr",
      format: "text",
      debug: false,
      textFields: false,
      syslog: null,
      writer: (line) => {
        kept.push(line);
        if (kept.length > KEPT_LINES) kept.shift();
        options.onLogLine?.(line);
      },
    });
    const collector = new ProposalCollector(options.onlyNetns ?? null);
    let markReady = () => {};
    const ready = new Promise<"ready">((resolve) => markReady = () => resolve("ready"));
    const daemon = new Daemon({
      log,
      tuners: TUNERS,
      advise: true,
      learningRate: parseLearningRate(options.learningRate ?? 4),
      rollbackOnExit: false,
      allow: null,
      disable: ["sysctl"],
      cgroup: options.cgroup ?? null,
      legacy: options.legacy ?? false,
      stateDir,
      probeCache: null,
      faultInject: [],
      onlyNetns: options.onlyNetns ?? null,
      controlSocket: null,
      metricsListen: null,
      onReady: () => markReady(),
      onProposal: (p, applied) => collector.add(p, applied),
      adviceRepeats: true, // the collector counts them
    });
    const stop = () => daemon.stop();
    signal.addEventListener("abort", stop, { once: true });
    if (signal.aborted) stop();
    const running = daemon.run();
    let connections: ConnectionAdvice[] = [];
    try {
      const first = await Promise.race([ready, running.then(() => "ended" as const)]);
      if (first === "ready" && !signal.aborted) {
        // The window counts from when the hooks are attached: start-up is not observation.
        const start = performance.now();
        const timer = setInterval(
          () => onProgress(Math.min(1, (performance.now() - start) / durationMs)),
          PROGRESS_MS,
        );
        try {
          await sleep(durationMs, signal);
        } finally {
          clearInterval(timer);
        }
        connections = connectionAdvice(daemon, options.onlyNetns ?? null);
      }
      stop();
      await running;
    } catch (e) {
      const why = unavailableReason(e, daemon);
      if (why !== null) {
        return { proposals: [], tuners: tunerStatuses(daemon), unavailable: why };
      }
      const message = e instanceof Error ? e.message : String(e);
      const context = kept.length ? ` (last daemon log lines: ${kept.slice(-5).join(" | ")})` : "";
      throw new Error(`the advise-mode daemon failed: ${message}${context}`);
    } finally {
      signal.removeEventListener("abort", stop);
      log.close();
      try {
        Deno.removeSync(stateDir, { recursive: true });
      } catch {
        // a temp dir left behind is harmless
      }
    }
    onProgress(1);
    return { proposals: collector.proposals(), connections, tuners: tunerStatuses(daemon) };
  };
}
