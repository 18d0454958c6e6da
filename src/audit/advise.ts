/**
 * The seam between the audit and the daemon's tuners: during the observation window the daemon
 * runs its tuners in advise mode (they decide but never write) and hands back what they would
 * have changed. The audit defines the interface; the daemon supplies the implementation.
 */
import { TUNERS } from "../tuners/registry.ts";
import type { Proposal } from "../tuning/proposal.ts";
import { type ConnectionAdvice, tunes } from "../tuning/tuner.ts";

/** A change a tuner would have made, and how many times it wanted it during the window. */
export interface AdviceProposal extends Proposal {
  count: number;
}

export interface TunerAdviceStatus {
  tuner: string;
  /** active: the tuner's BPF programs ran for the window; unavailable: they could not load. */
  status: "active" | "unavailable";
  /** Why unavailable (e.g. "tcp_sndbuf_expand is not traceable on this kernel"), or a note. */
  reason: string;
}

export interface AdviceResult {
  proposals: AdviceProposal[];
  /**
   * Connection tuners' per-path choices at the end of the window (tcp_conn), `netns` already
   * named as findings name it ("host", a /run/netns name, ns:<inode>).
   */
  connections?: ConnectionAdvice[];
  tuners: TunerAdviceStatus[];
  /** Set when no observation happened at all; the text says why. */
  unavailable?: string;
}

export interface AdviseOptions {
  /** How long to observe. The runner returns after this, or soon after `signal` aborts. */
  durationMs: number;
  /** Progress through the window, 0..1. */
  onProgress(fraction: number): void;
  /** Aborted on Ctrl-C or when the runner overruns; resolve with what was seen so far. */
  signal: AbortSignal;
}

/** Contract: resolves with the window's advice; rejects only on a real failure. */
export type AdviseRunner = (opts: AdviseOptions) => Promise<AdviceResult>;

/**
 * The tuners an observation window covers: every tuner this build ships that tunes something,
 * sysctls or connections (a tuner bpfpilot does not have yet gets no check row).
 */
export const OBSERVED_TUNERS: readonly string[] = TUNERS.filter(tunes).map((t) => t.name);

/** Stand-in until the daemon's advise runner is wired in. */
export const unavailableRunner: AdviseRunner = () =>
  Promise.resolve({
    proposals: [],
    tuners: [],
    unavailable: "observation unavailable: daemon not built yet",
  });
