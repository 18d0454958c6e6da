/**
 * BPF map access through libbpf's low-level calls. Per-CPU maps return one value per possible CPU
 * (not online: the kernel sizes the buffer by possible CPUs), each slot padded to 8 bytes.
 */
import { readCString } from "./cstr.ts";
import { checkInt, lib, possibleCpus } from "./runtime.ts";

const PERCPU_TYPES = new Set([5, /* PERCPU_HASH */ 6, /* PERCPU_ARRAY */ 10 /* LRU_PERCPU_HASH */]);
const ENOENT = 2;

export class BpfMap {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;

  constructor(readonly ptr: Deno.PointerObject) {
    const b = lib().bpf;
    this.name = readCString(b.bpf_map__name(ptr));
    this.type = b.bpf_map__type(ptr);
    this.keySize = b.bpf_map__key_size(ptr);
    this.valueSize = b.bpf_map__value_size(ptr);
    this.maxEntries = b.bpf_map__max_entries(ptr);
  }

  #fd = -1;
  #lookupSize = -1;

  /** Valid after the object is loaded (cached: it does not change while the object lives). */
  get fd(): number {
    if (this.#fd < 0) {
      this.#fd = checkInt(lib().bpf.bpf_map__fd(this.ptr), `map ${this.name} file descriptor`);
    }
    return this.#fd;
  }

  get perCpu(): boolean {
    return PERCPU_TYPES.has(this.type);
  }

  /** Size of a lookup buffer: per-CPU maps hold roundup(value, 8) bytes per possible CPU. */
  get lookupSize(): number {
    if (this.#lookupSize < 0) {
      this.#lookupSize = this.perCpu
        ? Math.ceil(this.valueSize / 8) * 8 * possibleCpus()
        : this.valueSize;
    }
    return this.#lookupSize;
  }

  #key(key: Uint8Array): Uint8Array<ArrayBuffer> {
    if (key.length !== this.keySize) {
      throw new Error(`map ${this.name}: key is ${key.length} bytes, expected ${this.keySize}`);
    }
    return key as Uint8Array<ArrayBuffer>;
  }

  /** The value, or null when the key is absent. */
  lookup(key: Uint8Array): Uint8Array | null {
    const val = new Uint8Array(this.lookupSize);
    const rc = lib().bpf.bpf_map_lookup_elem(this.fd, this.#key(key), val);
    if (rc === -ENOENT) return null;
    checkInt(rc, `lookup in map ${this.name}`);
    return val;
  }

  /** For per-CPU maps: one view per possible CPU. */
  lookupPerCpu(key: Uint8Array): Uint8Array[] | null {
    const all = this.lookup(key);
    if (!all) return null;
    const stride = Math.ceil(this.valueSize / 8) * 8;
    const out: Uint8Array[] = [];
    for (let off = 0; off < all.length; off += stride) {
      out.push(all.subarray(off, off + this.valueSize));
    }
    return out;
  }

  /**
   * Sums a u64 at `offset` over every CPU (per-CPU maps) or reads it (others); 0 when the key is
   * absent. Read straight from the lookup buffer (the daemon's tick calls it for every tuner).
   */
  sumU64(key: Uint8Array, offset = 0): bigint {
    const all = this.lookup(key);
    if (!all) return 0n;
    const view = new DataView(all.buffer, all.byteOffset, all.byteLength);
    const stride = this.perCpu ? Math.ceil(this.valueSize / 8) * 8 : all.length;
    let sum = 0n;
    for (let off = offset; off + 8 <= all.length; off += stride) {
      sum += view.getBigUint64(off, true);
    }
    return sum;
  }

  update(key: Uint8Array, value: Uint8Array, flags = 0n): void {
    if (value.length !== this.lookupSize) {
      throw new Error(
        `map ${this.name}: value is ${value.length} bytes, expected ${this.lookupSize}`,
      );
    }
    checkInt(
      lib().bpf.bpf_map_update_elem(
        this.fd,
        this.#key(key),
        value as Uint8Array<ArrayBuffer>,
        flags,
      ),
      `update of map ${this.name}`,
    );
  }

  /** True when the key existed. */
  delete(key: Uint8Array): boolean {
    const rc = lib().bpf.bpf_map_delete_elem(this.fd, this.#key(key));
    if (rc === -ENOENT) return false;
    checkInt(rc, `delete from map ${this.name}`);
    return true;
  }

  /** Every key, in the kernel's order. */
  *keys(): Generator<Uint8Array> {
    let prev: Uint8Array<ArrayBuffer> | null = null;
    for (;;) {
      const next = new Uint8Array(this.keySize);
      const rc = lib().bpf.bpf_map_get_next_key(this.fd, prev, next);
      if (rc === -ENOENT) return;
      checkInt(rc, `iterating map ${this.name}`);
      yield next;
      prev = next;
    }
  }
}

export function u32Key(n: number): Uint8Array {
  const k = new Uint8Array(4);
  new DataView(k.buffer).setUint32(0, n, true);
  return k;
}
