/**
 * Where every proposal goes: admin overrides, the rate gate (cool-down, coalescing), the journal
 * (original recorded before the write), the write itself (or nothing in advise mode), the two
 * bpftune-shaped log lines, and the statistics.
 *
 * Within deferWrites() (the daemon's handling of one wake-up's events, or one tick) an admitted
 * change is announced to the journal and queued; at its end one append (write(2)) puts every
 * queued record in the log, and only then are the sysctls written, in order. No fdatasync here:
 * the tick syncs the log later (journal.ts, "Durability"). A read of a sysctl with a
 * queued write writes the queue first (flushFor), so a tuner never reads a value it just changed
 * as still unchanged. propose() then says "admitted": a write that fails afterwards is logged and
 * settled as failed, as before, but its proposer has already been told true.
 */
import { formatSysctlValues, sysctlWLine } from "../kernel/sysctl.ts";
import { describeNetns, NetnsGoneError } from "../kernel/netns.ts";
import { forgetNetnsKeys } from "../kernel/netns_keyed.ts";
import type { Journal } from "./journal.ts";
import type { Proposal } from "../tuning/proposal.ts";
import type { RateGate } from "./rate_gate.ts";
import type { DaemonStats } from "./stats.ts";
import type { SysctlIO } from "./sysctl_io.ts";
import type { LogLike } from "../tuning/tuner.ts";
import type { Judgement } from "./config_policy.ts";
import type { Outcome } from "./event_mutes.ts";
import { changeTiming as ct } from "./change_timing.ts";

export interface ApplierDeps {
  journal: Journal;
  gate: RateGate;
  io: SysctlIO;
  log: LogLike;
  stats: DaemonStats;
  advise: boolean;
  now: () => number;
  /** Scenario description by tuner and scenario name (for the first log line). */
  describe: (tuner: string, scenario: string) => string;
  /**
   * Only this namespace's per-namespace sysctls are tuned (host-wide ones such as tcp_mem still
   * are: they are shared); null = every namespace.
   */
  onlyNetns?: string | null;
  /** Whether a sysctl is per-namespace or host-wide. */
  scopeOf?: (sysctl: string) => "netns" | "global";
  /** Why the operator's policy refuses a proposal (boot-time pin, ...), or null. */
  refusal?: (p: Proposal) => string | null;
  /** The configuration file's per-tuner/per-sysctl policy (disabled, advise-only, ceiling). */
  policy?: { judge(p: Proposal): Judgement };
  /** What became of each proposal and at-ceiling report (event_mutes.ts decides on them). */
  outcome?: (o: Outcome) => void;
  /**
   * The cookie the namespace registry holds for a key now (kernel/netns.ts heldNetnsCookie),
   * which every write checks the namespace's own against: a write goes only where the record's is.
   */
  heldCookie?: (netns: string) => bigint | null | undefined;
}

/** How long a write of ours can still show up as a sysctl event. */
const OWN_WRITE_WINDOW_MS = 5000;

/** An admitted change whose record is announced and whose write waits (see deferWrites). */
interface QueuedWrite {
  p: Proposal;
  fields: {
    tuner: string;
    scenario: string;
    sysctl: string;
    netns: string;
    from: Proposal["from"];
    to: Proposal["to"];
    reason: string;
  };
  scenarioLine: string;
}

export class ProposalApplier {
  #overrideNoted = new Set<string>();
  #refusalNoted = new Set<string>();
  /** sysctl -> our recent writes (values as text, time) for writer-less sysctl events. */
  #ownWrites = new Map<string, { text: string; at: number }[]>();
  /** Writes waiting for their records' append; null outside deferWrites (write at once). */
  #queue: QueuedWrite[] | null = null;
  /** The last proposal's key and cool-down end, when the rate gate's cool-down refused it. */
  #coolingDown: { key: string; until: number } | null = null;
  constructor(private readonly d: ApplierDeps) {}

  /** Namespaces that are gone: what was noted about their sysctls goes with them. */
  forgetNetns(gone: ReadonlySet<string>): void {
    forgetNetnsKeys(this.#overrideNoted, gone);
    forgetNetnsKeys(this.#refusalNoted, gone);
  }

  /**
   * Runs `fn` (inside a journal batch) with its changes queued, then appends their records with
   * one write(2) and writes them. Nested calls join the outer one.
   */
  deferWrites<T>(fn: () => T): T {
    if (this.#queue) return fn();
    this.#queue = [];
    try {
      return fn();
    } finally {
      this.#flush();
      this.#queue = null;
    }
  }

  /** Writes the queue first when one of `sysctls` of `netns` has a write in it (see header). */
  flushFor(netns: string, sysctls: readonly string[]): void {
    if (this.#queue?.some((w) => w.p.netns === netns && sysctls.includes(w.p.sysctl))) {
      this.#flush();
    }
  }

  /** The queued records appended (one write(2)), then the writes, in order. */
  #flush(): void {
    const queued = this.#queue;
    if (!queued || queued.length === 0) return;
    this.#queue = [];
    const journal = this.d.journal;
    try {
      ct ? ct.time("append", () => journal.appendAnnounced()) : journal.appendAnnounced();
    } catch (e) {
      for (const w of queued) this.#failed(w, e);
      return;
    }
    for (const w of queued) this.#write(w);
  }

  /** Returns true when the change was written (or, in advise mode, would have been). */
  propose(proposed: Proposal): boolean {
    return ct ? ct.time("propose", () => this.#propose(proposed)) : this.#propose(proposed);
  }

  #propose(proposed: Proposal): boolean {
    const { journal, gate, log, now } = this.d;
    const report = this.d.outcome ?? (() => {});
    const { netns, sysctl } = proposed;
    let p = proposed;
    const key = `${p.netns}\0${p.sysctl}`;
    this.#coolingDown = null;
    const only = this.d.onlyNetns;
    if (only && p.netns !== only && this.d.scopeOf?.(p.sysctl) !== "global") {
      log.debug(`ignoring ${p.sysctl} in ${describeNetns(p.netns)}: only ${only} is tuned`);
      report({ kind: "refused", netns, sysctl });
      return false;
    }
    if (journal.isOverridden(p.netns, p.sysctl)) {
      if (!this.#overrideNoted.has(key)) {
        this.#overrideNoted.add(key);
        log.info(
          `not tuning '${p.sysctl}' in ${describeNetns(p.netns)}: the administrator took it over ` +
            `(bpfpilot enable ${p.sysctl} resumes)`,
          { event: "override_in_force", tuner: p.tuner, sysctl: p.sysctl, netns: p.netns },
        );
      }
      report({ kind: "overridden", netns, sysctl });
      return false;
    }
    this.#overrideNoted.delete(key);
    const judged = this.d.policy?.judge(p);
    const refused = this.d.refusal?.(p) ?? judged?.refuse ?? null;
    if (refused !== null) {
      if (!this.#refusalNoted.has(key)) {
        this.#refusalNoted.add(key);
        log.info(`not tuning '${p.sysctl}' in ${describeNetns(p.netns)}: ${refused}`, {
          event: "refused",
          tuner: p.tuner,
          sysctl: p.sysctl,
          netns: p.netns,
          reason: refused,
        });
      }
      report({ kind: "refused", netns, sysctl });
      return false;
    }
    this.#refusalNoted.delete(key);
    if (judged?.cappedBy) p = { ...p, to: judged.to };
    const adviseOnly = this.d.advise ? "advise mode" : judged?.adviseOnly;
    const verdict = gate.admit(p, now());
    if (verdict.kind === "cooling-down") {
      if (!verdict.repeat) {
        log.debug(`deferring change of ${p.sysctl}: cooling down after the last change`, {
          sysctl: p.sysctl,
          netns: p.netns,
        });
      }
      report({ kind: "cooling-down", netns, sysctl, untilMs: verdict.until });
      this.#coolingDown = { key, until: verdict.until };
      return false;
    }
    if (verdict.kind !== "apply") {
      // An advice repeated (nothing written, so the same value): not news until the value changes.
      const advised = adviseOnly && verdict.kind === "duplicate";
      report(advised ? { kind: "advised", netns, sysctl } : { kind: "other" });
      return false;
    }

    const capped = judged?.cappedBy
      ? `; capped by ${judged.cappedBy}: (${p.to.join(" ")}) instead`
      : "";
    const fields = {
      tuner: p.tuner,
      scenario: p.scenario,
      sysctl: p.sysctl,
      netns: p.netns,
      from: p.from,
      to: p.to,
      reason: p.reason + capped,
    };
    const scenario = { event: "scenario", ...fields } as const;
    const scenarioLine = `Scenario '${p.scenario}' occurred for tunable '${p.sysctl}' in ` +
      `${describeNetns(p.netns)}. ${this.d.describe(p.tuner, p.scenario)}`;
    if (adviseOnly) {
      const advised = { event: "advised", ...fields } as const;
      log.info(scenarioLine, scenario);
      log.info(fields.reason, advised);
      log.info(`${adviseOnly}: not applied; to apply: ${sysctlWLine(p.sysctl, p.to)}`, advised);
      gate.settle(p, "applied", now());
      this.d.stats.countScenario(p.tuner, p.scenario, p.sysctl, p.netns);
      report({ kind: "advised", netns, sysctl });
      return true;
    }
    const queued: QueuedWrite = { p, fields, scenarioLine };
    try {
      ct ? ct.time("announce", () => this.#announce(queued)) : this.#announce(queued);
    } catch (e) {
      report({ kind: "other" });
      return this.#failed(queued, e);
    }
    if (!this.#queue) {
      const written = this.#write(queued);
      report(written ? { kind: "changed", netns } : { kind: "other" });
      return written;
    }
    // Outcome and answer now: a queued write fails only if its namespace dies meanwhile.
    this.#queue.push(queued);
    report({ kind: "changed", netns });
    return true;
  }

  /**
   * When the last proposal (of `sysctl` in `netns`) was refused by the rate gate's cool-down
   * alone: when it ends; else null (TunerContext.coolingDownUntil).
   */
  coolingDownUntil(sysctl: string, netns: string): number | null {
    const c = this.#coolingDown;
    return c !== null && c.key === `${netns}\0${sysctl}` ? c.until : null;
  }

  /** A change that could not be made: settled as failed (its cool-down starts) and logged. */
  #failed({ p, fields }: QueuedWrite, e: unknown): false {
    this.d.gate.settle(p, "failed", this.d.now());
    this.d.log.error(
      `could not change ${p.sysctl} in ${describeNetns(p.netns)}: ${(e as Error).message}`,
      { event: "change_failed", ...fields },
    );
    return false;
  }

  /** The write of an announced change (its record in the log), and what follows from it. */
  #write(w: QueuedWrite): boolean {
    const { p, fields } = w;
    const { journal, gate, log, now } = this.d;
    try {
      ct ? ct.time("sysctl write", () => this.#writeSysctl(w)) : this.#writeSysctl(w);
      ct ? ct.time("recordWritten", () => this.#recordWritten(w)) : this.#recordWritten(w);
    } catch (e) {
      if (!(e instanceof NetnsGoneError)) return this.#failed(w, e);
      // Refused before writing: the namespace died, or the process whose path led to it moved.
      // Nothing was written, so neither the journal nor this line may say a change was made
      // (no bpftune "Due to ... change" reason: log readers take that sentence for a change).
      gate.settle(p, "failed", now());
      journal.recordNotWritten(p.netns, p.sysctl);
      const { reason: _, ...notChanged } = fields;
      log.info(`did not change ${p.sysctl} in ${describeNetns(p.netns)}: ${e.message}`, notChanged);
      return false;
    }
    ct ? ct.time("settle+stats", () => this.#settleWritten(w)) : this.#settleWritten(w);
    ct ? ct.time("log lines", () => this.#logWritten(w)) : this.#logWritten(w);
    return true;
  }

  // The stages of a change, each timed on its own (change_timing.ts).
  #announce({ p }: QueuedWrite): void {
    this.d.journal.announce(p.netns, p.sysctl, p.tuner, p.from, p.to);
  }

  #writeSysctl({ p }: QueuedWrite): void {
    this.#checkRecordedNamespace(p);
    this.#rememberWrite(p.sysctl, formatSysctlValues(p.to, p.sysctl));
    this.d.io.write(p.sysctl, p.netns, p.to);
  }

  /**
   * The namespace at the inode must be the one the change's record names. The record took the
   * cookie the registry held at the announce, the write checks the namespace's own against the
   * registry's at the write (inside it, or by the file a checked visit kept): the same only while
   * the registry's did not change in between (a visit earlier in the batch can find a new namespace
   * at that inode, or the entry be an older one's). Otherwise the write would land in a namespace
   * its record does not name, and rollback would drop the record as a dead namespace's.
   */
  #checkRecordedNamespace(p: Proposal): void {
    if (!this.d.heldCookie) return;
    const recorded = this.d.journal.recordedCookie(p.netns, p.sysctl);
    if (recorded !== undefined && String(this.d.heldCookie(p.netns)) !== recorded) {
      throw new NetnsGoneError(p.netns);
    }
  }

  #recordWritten({ p }: QueuedWrite): void {
    this.d.journal.recordWritten(p.netns, p.sysctl, p.to);
  }

  #settleWritten({ p }: QueuedWrite): void {
    this.d.gate.settle(p, "applied", this.d.now());
    this.d.stats.countScenario(p.tuner, p.scenario, p.sysctl, p.netns);
    this.d.stats.recordChange(p.tuner, p.sysctl, p.netns, p.from, p.to);
  }

  #logWritten({ fields, scenarioLine }: QueuedWrite): void {
    this.d.log.info(scenarioLine, { event: "scenario", ...fields });
    this.d.log.info(fields.reason, { event: "changed", ...fields });
  }

  #rememberWrite(sysctl: string, text: string): void {
    const now = this.d.now();
    let recent = this.#ownWrites.get(sysctl);
    if (!recent) this.#ownWrites.set(sysctl, recent = []);
    // In time order: the expired ones are at the front (no copy of the rest per write).
    let stale = 0;
    while (stale < recent.length && now - recent[stale].at >= OWN_WRITE_WINDOW_MS) stale++;
    if (stale > 0) recent.splice(0, stale);
    recent.push({ text, at: now });
  }

  isOwnRecentWrite(sysctl: string, values: string): boolean {
    const text = values.trim().split(/\s+/).join(" ");
    const now = this.d.now();
    return (this.#ownWrites.get(sysctl) ?? []).some((w) =>
      w.text === text && now - w.at < OWN_WRITE_WINDOW_MS
    );
  }

  /** A growth that cannot happen because the value is at its ceiling: logged once. */
  atCeiling(tuner: string, sysctl: string, netns: string, value: number[], ceiling: number): void {
    this.d.outcome?.({ kind: "at-ceiling", netns, sysctl });
    if (this.d.gate.reportAtCeiling(netns, sysctl, value, ceiling)) {
      this.d.log.notice(
        `'${sysctl}' in ${describeNetns(netns)} is at its ceiling (${value.join(" ")}, limit ` +
          `${ceiling}); not growing it further`,
        { event: "at_ceiling", tuner, sysctl, netns, value, ceiling },
      );
    }
  }
}
