/**
 * The kernel-side rate limiter's map (bpf/include/bpfpilot.h `struct bpfp_rl_key`/`bpfp_rl_val`,
 * map `bpfp_ratelimit` in every tuner object), as far as userspace writes it: muting a key so the
 * kernel stops re-sending events that can change nothing, and clearing the mute. Checked against
 * every object's BTF (contract_check.ts).
 */

export const RL_MAP = "bpfp_ratelimit";
/**
 * Objects with the limiter's per-CPU fast path (bpf/include/bpfpilot_rl_percpu.bpf.h) also hold
 * this one-entry array: a u64 bumped after every write to RL_MAP, so each CPU drops the
 * decisions it cached from before the write.
 */
export const RL_EPOCH_MAP = "bpfp_rl_epoch";

export const RL_KEY_LAYOUT = {
  netns: { offset: 0, size: 8 },
  kind: { offset: 8, size: 4 },
  pad: { offset: 12, size: 4 },
} as const;
export const RL_KEY_SIZE = 16;

export const RL_VALUE_LAYOUT = {
  last_ns: { offset: 0, size: 8 },
  folded: { offset: 8, size: 8 },
  mute_until_ns: { offset: 16, size: 8 },
  mute_need: { offset: 24, size: 8 },
} as const;
export const RL_VALUE_SIZE = 32;

/** mute_until_ns of a key muted until userspace clears it (BPFP_MUTED_UNTIL_CLEARED). */
export const MUTED_UNTIL_CLEARED = 0xffff_ffff_ffff_ffffn;

export function rateLimitKey(netns: bigint, kind: number): Uint8Array {
  const b = new Uint8Array(RL_KEY_SIZE);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(RL_KEY_LAYOUT.netns.offset, netns, true);
  dv.setUint32(RL_KEY_LAYOUT.kind.offset, kind, true);
  return b;
}

/**
 * A muted key's value: nothing is sent before `untilNs` (bpf_ktime_get_ns clock, or
 * MUTED_UNTIL_CLEARED); `lastNs` is the last emission, so an expired mute waits out the interval.
 * `need` > 0: only hits whose evidence is at most this are muted (bpfp_rate_limit_need).
 */
export function mutedValue(lastNs: bigint, untilNs: bigint, need = 0n): Uint8Array {
  const b = new Uint8Array(RL_VALUE_SIZE);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(RL_VALUE_LAYOUT.last_ns.offset, lastNs, true);
  dv.setBigUint64(RL_VALUE_LAYOUT.mute_until_ns.offset, untilNs, true);
  dv.setBigUint64(RL_VALUE_LAYOUT.mute_need.offset, need, true);
  return b;
}

/** The epoch array's next value after `current` (its one u64, little-endian as the kernel's). */
export function nextEpoch(current: Uint8Array | null): Uint8Array {
  const b = new Uint8Array(8);
  const prev = current
    ? new DataView(current.buffer, current.byteOffset, 8).getBigUint64(0, true)
    : 0n;
  new DataView(b.buffer).setBigUint64(0, (prev + 1n) & 0xffff_ffff_ffff_ffffn, true);
  return b;
}
