/**
 * BPF objects, programs and links over libbpf. An object is opened from embedded bytes (never a
 * file), programs are switched on or off before load, and every link is destroyed on close, so
 * nothing stays attached once the object is closed (and the kernel detaches links by itself if the
 * process dies, since no link is pinned).
 */
import { cstr, pointerAddress, readCString } from "./cstr.ts";
import { BpfError } from "./errors.ts";
import { BpfMap } from "./map.ts";
import { checkInt, checkPtr, lib, withCapturedLog } from "./runtime.ts";

export type AttachKind = "tp_btf" | "tracepoint" | "raw_tp" | "fentry" | "kprobe" | "cgroup";

export class BpfLink {
  #ptr: Deno.PointerObject | null;
  constructor(ptr: Deno.PointerObject, readonly description: string) {
    this.#ptr = ptr;
  }
  get attached(): boolean {
    return this.#ptr !== null;
  }
  destroy(): void {
    if (!this.#ptr) return;
    lib().bpf.bpf_link__destroy(this.#ptr);
    this.#ptr = null;
  }
}

export class BpfProgram {
  constructor(readonly object: BpfObject, readonly ptr: Deno.PointerObject) {}

  get name(): string {
    return readCString(lib().bpf.bpf_program__name(this.ptr));
  }
  get sectionName(): string {
    return readCString(lib().bpf.bpf_program__section_name(this.ptr));
  }
  get autoload(): boolean {
    return lib().bpf.bpf_program__autoload(this.ptr);
  }
  /** Only before load: programs not wanted on this kernel are left out of the load. */
  setAutoload(on: boolean): void {
    checkInt(lib().bpf.bpf_program__set_autoload(this.ptr, on), `autoload of ${this.name}`);
  }
  /** Only before load: aims a generic fentry/tp_btf program at a kernel function or tracepoint. */
  setAttachTarget(func: string): void {
    const name = cstr(func);
    checkInt(
      lib().bpf.bpf_program__set_attach_target(this.ptr, 0, name),
      `setting attach target ${func} of ${this.name}`,
    );
  }
  get fd(): number {
    return lib().bpf.bpf_program__fd(this.ptr);
  }

  /**
   * Attaches by kind. `target` is "category/name" for tracepoints, the tracepoint name for raw_tp,
   * the function for kprobe, a cgroup v2 directory for cgroup programs; tp_btf and fentry use the
   * target given at load time.
   */
  attach(kind: AttachKind, target: string): BpfLink {
    const b = lib().bpf;
    const what = `attaching ${this.name} (${kind} ${target})`;
    let p: Deno.PointerValue;
    switch (kind) {
      case "tp_btf":
      case "fentry":
        p = b.bpf_program__attach_trace(this.ptr);
        break;
      case "tracepoint": {
        const [cat, name] = target.split("/");
        p = b.bpf_program__attach_tracepoint(this.ptr, cstr(cat), cstr(name ?? ""));
        break;
      }
      case "raw_tp":
        p = b.bpf_program__attach_raw_tracepoint(this.ptr, cstr(target));
        break;
      case "kprobe":
        p = b.bpf_program__attach_kprobe(this.ptr, false, cstr(target));
        break;
      case "cgroup": {
        const fd = lib().libc.open(cstr(target), 0o200000 /* O_RDONLY|O_DIRECTORY */);
        if (fd < 0) throw new Error(`${what} failed: cannot open cgroup directory ${target}`);
        try {
          p = b.bpf_program__attach_cgroup(this.ptr, fd);
          p = checkPtr(p, what);
        } finally {
          lib().libc.close(fd); // the link holds its own reference to the cgroup
        }
        break;
      }
    }
    const link = new BpfLink(checkPtr(p, what), `${this.name} ${kind} ${target}`);
    this.object.adoptLink(link);
    return link;
  }
}

export interface OpenOptions {
  /** Object name: prefixes internal maps; shows up in libbpf's messages. */
  name: string;
}

export class BpfObject {
  #ptr: Deno.PointerObject | null;
  #bytes: Uint8Array<ArrayBuffer>; // libelf parses the buffer in place: keep it alive until close
  #name: Uint8Array<ArrayBuffer>;
  #links: BpfLink[] = [];
  #loaded = false;
  readonly name: string;

  private constructor(ptr: Deno.PointerObject, bytes: Uint8Array<ArrayBuffer>, name: string) {
    this.#ptr = ptr;
    this.#bytes = bytes;
    this.#name = cstr(name);
    this.name = name;
  }

  static open(bytes: Uint8Array, opts: OpenOptions): BpfObject {
    const copy = new Uint8Array(bytes) as Uint8Array<ArrayBuffer>;
    const name = cstr(opts.name);
    // struct bpf_object_open_opts (libbpf 1.x): sz@0, object_name@8, rest zero. A larger sz with
    // zeroed tail is accepted by older 1.x releases.
    const o = new Uint8Array(80);
    const dv = new DataView(o.buffer);
    dv.setBigUint64(0, 80n, true);
    dv.setBigUint64(8, pointerAddress(name), true);
    const p = lib().bpf.bpf_object__open_mem(copy, BigInt(copy.length), o);
    const obj = new BpfObject(checkPtr(p, `opening BPF object ${opts.name}`), copy, opts.name);
    obj.#name = name;
    return obj;
  }

  get ptr(): Deno.PointerObject {
    if (!this.#ptr) throw new Error(`BPF object ${this.name} is closed`);
    return this.#ptr;
  }
  get loaded(): boolean {
    return this.#loaded;
  }
  /** Bytes size of the embedded object (kept for diagnostics). */
  get size(): number {
    return this.#bytes.length;
  }

  programs(): BpfProgram[] {
    const out: BpfProgram[] = [];
    let p: Deno.PointerValue = null;
    for (;;) {
      p = lib().bpf.bpf_object__next_program(this.ptr, p);
      if (p === null) return out;
      out.push(new BpfProgram(this, p));
    }
  }

  program(name: string): BpfProgram {
    const p = lib().bpf.bpf_object__find_program_by_name(this.ptr, cstr(name));
    if (p === null) throw new Error(`BPF object ${this.name} has no program ${name}`);
    return new BpfProgram(this, p);
  }

  map(name: string): BpfMap {
    const m = this.findMap(name);
    if (m === null) throw new Error(`BPF object ${this.name} has no map ${name}`);
    return m;
  }

  /** The map, or null when this object has none of that name (an optional one). */
  findMap(name: string): BpfMap | null {
    const p = lib().bpf.bpf_object__find_map_by_name(this.ptr, cstr(name));
    return p === null ? null : new BpfMap(p);
  }

  /**
   * Loads every program still marked autoload. On failure the error carries libbpf's warnings
   * (the verifier log among them); the object must then be closed and reopened to retry.
   */
  load(): void {
    const { error, log } = withCapturedLog(() =>
      checkInt(lib().bpf.bpf_object__load(this.ptr), `loading BPF object ${this.name}`)
    );
    if (error instanceof BpfError) {
      throw new BpfError(`loading BPF object ${this.name}`, error.errno, error.libbpfText, log);
    }
    if (error) throw error;
    this.#loaded = true;
  }

  adoptLink(link: BpfLink): void {
    this.#links.push(link);
  }

  get links(): readonly BpfLink[] {
    return this.#links;
  }

  /** Destroys every link, then frees the object. Safe to call twice. */
  close(): void {
    for (const l of this.#links) l.destroy();
    this.#links = [];
    if (this.#ptr) lib().bpf.bpf_object__close(this.#ptr);
    this.#ptr = null;
  }
}
