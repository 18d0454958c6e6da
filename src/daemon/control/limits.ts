/**
 * Resource limits of the control socket. They keep a misbehaving or hostile local client from
 * tying up the daemon: every connection is bounded in bytes, time and number.
 */
export interface ControlLimits {
  /** Longest request line in bytes (newline excluded); longer → `request-too-large` + close. */
  maxLineBytes: number;
  /** A complete request line must arrive within this many ms of the previous answer. */
  idleTimeoutMs: number;
  /** An answer must be accepted by the client within this many ms, else the client is dropped. */
  writeTimeoutMs: number;
  /** A provider call that takes longer than this is answered with `timeout`. */
  handlerTimeoutMs: number;
  /** Connections served at once; further ones get a `busy` answer and are closed. */
  maxClients: number;
  /** Connections served at once on root's own socket (beside a `--control-group` socket). */
  rootClients: number;
  /** Malformed requests tolerated on one connection before it is closed. */
  maxBadRequestsPerConnection: number;
}

export const DEFAULT_CONTROL_LIMITS: Readonly<ControlLimits> = Object.freeze({
  maxLineBytes: 4096,
  idleTimeoutMs: 2000,
  writeTimeoutMs: 2000,
  handlerTimeoutMs: 5000,
  maxClients: 64,
  rootClients: 8,
  maxBadRequestsPerConnection: 16,
});

/** Fills unspecified limits with the defaults and rejects nonsensical values early. */
export function resolveLimits(partial: Partial<ControlLimits> = {}): ControlLimits {
  const limits = { ...DEFAULT_CONTROL_LIMITS, ...partial };
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new RangeError(`control socket limit ${key} must be a positive integer, got ${value}`);
    }
  }
  return limits;
}
