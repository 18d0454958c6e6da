/**
 * The one event format every BPF object emits (bpf/include/bpfpilot.h `struct bpfp_event`),
 * decoded with DataView. The version field guards against an object and a parser that disagree.
 */

export const EVENT_VERSION = 2;
export const EVENT_SIZE = 128;

/** struct bpfp_event's fields; checked against every tuner object's BTF (contract_check.ts). */
export const EVENT_LAYOUT = {
  version: { offset: 0, size: 2 },
  tuner: { offset: 2, size: 2 },
  kind: { offset: 4, size: 2 },
  flags: { offset: 6, size: 2 },
  pid: { offset: 8, size: 4 },
  count: { offset: 12, size: 4 },
  netns: { offset: 16, size: 8 },
  ts_ns: { offset: 24, size: 8 },
  data: { offset: 32, size: 64 },
  comm: { offset: 96, size: 1, count: 16, text: true },
  rl_netns: { offset: 112, size: 8 },
  rl_kind: { offset: 120, size: 4 },
  rl_pad: { offset: 124, size: 4 },
} as const;

const DATA_OFFSET = EVENT_LAYOUT.data.offset;
const DATA_LEN = EVENT_LAYOUT.data.size;
const COMM_OFFSET = EVENT_LAYOUT.comm.offset;

export interface BpfpEvent {
  version: number;
  tuner: number;
  kind: number;
  flags: number;
  pid: number;
  /** Raw hook hits this event stands for (the kernel-side rate limiter folds the rest). */
  count: number;
  /** Network namespace inode number (ns.inum) of the socket or writer. */
  netns: bigint;
  tsNs: bigint;
  /** Payload as eight u64 values; tuner-specific meaning. */
  values: bigint[];
  /** Payload as a NUL-terminated string (sysctl names). */
  text: string;
  /** The raw payload (64 bytes), for tuner-specific layouts. */
  data: Uint8Array;
  comm: string;
  /**
   * The kernel-side rate-limit key the event came through (struct bpfp_rl_key): what userspace
   * mutes when the event can change nothing (src/daemon/event_mutes.ts).
   */
  rlNetns: bigint;
  rlKind: number;
}

export class EventFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EventFormatError";
  }
}

const dec = new TextDecoder();

export function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return dec.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

export function decodeEvent(bytes: Uint8Array): BpfpEvent {
  if (bytes.length < EVENT_SIZE) {
    throw new EventFormatError(`event of ${bytes.length} bytes, expected ${EVENT_SIZE}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint16(0, true);
  if (version !== EVENT_VERSION) {
    throw new EventFormatError(
      `event format version ${version}, this build reads version ${EVENT_VERSION}`,
    );
  }
  return new DecodedEvent(dv, bytes.slice(DATA_OFFSET, DATA_OFFSET + DATA_LEN));
}

/**
 * A decoded event. The payload's two generic views (`values`, `text`) are made on first use only:
 * tuners read their payload through their contract (`data`), and every event reaching userspace
 * paid for eight BigInts and a string decode nobody read.
 */
class DecodedEvent implements BpfpEvent {
  readonly version: number;
  readonly tuner: number;
  readonly kind: number;
  readonly flags: number;
  readonly pid: number;
  readonly count: number;
  readonly netns: bigint;
  readonly tsNs: bigint;
  readonly comm: string;
  readonly rlNetns: bigint;
  readonly rlKind: number;
  #values: bigint[] | null = null;
  #text: string | null = null;

  constructor(dv: DataView, readonly data: Uint8Array) {
    this.version = dv.getUint16(0, true);
    this.tuner = dv.getUint16(2, true);
    this.kind = dv.getUint16(4, true);
    this.flags = dv.getUint16(6, true);
    this.pid = dv.getUint32(8, true);
    this.count = dv.getUint32(12, true);
    this.netns = dv.getBigUint64(16, true);
    this.tsNs = dv.getBigUint64(24, true);
    const comm = new Uint8Array(dv.buffer, dv.byteOffset + COMM_OFFSET, 16);
    this.comm = cString(comm);
    this.rlNetns = dv.getBigUint64(EVENT_LAYOUT.rl_netns.offset, true);
    this.rlKind = dv.getUint32(EVENT_LAYOUT.rl_kind.offset, true);
  }

  get values(): bigint[] {
    if (this.#values === null) {
      const dv = new DataView(this.data.buffer, this.data.byteOffset, DATA_LEN);
      this.#values = Array.from({ length: DATA_LEN / 8 }, (_, i) => dv.getBigUint64(i * 8, true));
    }
    return this.#values;
  }

  get text(): string {
    return this.#text ??= cString(this.data);
  }
}

/** Builds an event's bytes (tests and benchmarks feed the decoder with it). */
export function encodeEvent(e: Partial<BpfpEvent>): Uint8Array {
  const b = new Uint8Array(EVENT_SIZE);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, e.version ?? EVENT_VERSION, true);
  dv.setUint16(2, e.tuner ?? 0, true);
  dv.setUint16(4, e.kind ?? 0, true);
  dv.setUint16(6, e.flags ?? 0, true);
  dv.setUint32(8, e.pid ?? 0, true);
  dv.setUint32(12, e.count ?? 1, true);
  dv.setBigUint64(16, e.netns ?? 0n, true);
  dv.setBigUint64(24, e.tsNs ?? 0n, true);
  if (e.text !== undefined) {
    b.set(new TextEncoder().encode(e.text).subarray(0, DATA_LEN - 1), DATA_OFFSET);
  } else {
    (e.values ?? []).slice(0, 8).forEach((v, i) => dv.setBigUint64(DATA_OFFSET + i * 8, v, true));
  }
  if (e.comm) b.set(new TextEncoder().encode(e.comm).subarray(0, 15), COMM_OFFSET);
  dv.setBigUint64(EVENT_LAYOUT.rl_netns.offset, e.rlNetns ?? e.netns ?? 0n, true);
  dv.setUint32(EVENT_LAYOUT.rl_kind.offset, e.rlKind ?? e.kind ?? 0, true);
  return b;
}
