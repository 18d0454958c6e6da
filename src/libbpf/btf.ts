/** Kernel BTF lookups: does a function, tracepoint or type exist on the running kernel? */
import { cstr } from "./cstr.ts";
import { lib } from "./runtime.ts";

export const BTF_KIND = { STRUCT: 4, TYPEDEF: 8, FUNC: 12 } as const;

// struct btf_type: name_off, info (kind in bits 24-28, vlen in bits 0-15), size/type; a STRUCT's
// members (struct btf_member: name_off, type, offset) follow it, 12 bytes each.
const BTF_TYPE_BYTES = 12;
const BTF_MEMBER_BYTES = 12;
const KIND_PTR = 2;
const KIND_FUNC_PROTO = 13;
/** Kinds that only qualify or rename the type they point at. */
const SEE_THROUGH = new Set<number>([
  BTF_KIND.TYPEDEF,
  9, /* VOLATILE */
  10, /* CONST */
  11, /* RESTRICT */
  18, /* TYPE_TAG */
]);

export class KernelBtf {
  #ptr: Deno.PointerObject | null;
  private constructor(ptr: Deno.PointerObject) {
    this.#ptr = ptr;
  }

  /** null when the kernel has no BTF (CONFIG_DEBUG_INFO_BTF off). */
  static load(): KernelBtf | null {
    const p = lib().bpf.btf__load_vmlinux_btf();
    return p === null ? null : new KernelBtf(p);
  }

  has(name: string, kind: number): boolean {
    return this.#find(name, kind) !== null;
  }

  hasFunction(name: string): boolean {
    return this.has(name, BTF_KIND.FUNC);
  }

  /** Every tracepoint has a `btf_trace_<name>` typedef (what tp_btf attaches through). */
  hasTracepoint(name: string): boolean {
    return this.has(`btf_trace_${name}`, BTF_KIND.TYPEDEF);
  }

  /**
   * Whether the function pointer `struct <structName>.<member>` returns void: true or false, or
   * null when the struct, the member or a function pointer there is missing. How a kernel's
   * behaviour that left no other trace shows (e.g. dst_ops.gc lost its "refuse" result in 6.3).
   */
  functionPointerReturnsVoid(structName: string, member: string): boolean | null {
    const id = this.#find(structName, BTF_KIND.STRUCT);
    if (id === null) return null;
    const st = this.#type(id);
    for (let i = 0; i < st.vlen; i++) {
      const m = st.view.getUint32(BTF_TYPE_BYTES + i * BTF_MEMBER_BYTES);
      if (this.#name(m) !== member) continue;
      const ptr = this.#resolve(st.view.getUint32(BTF_TYPE_BYTES + i * BTF_MEMBER_BYTES + 4));
      if (ptr === null || ptr.kind !== KIND_PTR) return null;
      const proto = this.#resolve(ptr.ref);
      return proto === null || proto.kind !== KIND_FUNC_PROTO ? null : proto.ref === 0;
    }
    return null;
  }

  #find(name: string, kind: number): number | null {
    if (!this.#ptr) throw new Error("kernel BTF is closed");
    const id = lib().bpf.btf__find_by_name_kind(this.#ptr, cstr(name), kind);
    return id > 0 ? id : null;
  }

  /** The type with this id: its kind, vlen, the id it refers to, and a view of its bytes. */
  #type(id: number) {
    const p = lib().bpf.btf__type_by_id(this.#ptr, id);
    if (p === null) throw new Error(`kernel BTF has no type ${id}`);
    const view = new Deno.UnsafePointerView(p);
    const info = view.getUint32(4);
    return { kind: (info >>> 24) & 0x1f, vlen: info & 0xffff, ref: view.getUint32(8), view };
  }

  /** Follows typedefs and qualifiers to the type they name (null for void). */
  #resolve(id: number): { kind: number; ref: number } | null {
    for (let hops = 0; id !== 0 && hops < 32; hops++) {
      const t = this.#type(id);
      if (!SEE_THROUGH.has(t.kind)) return t;
      id = t.ref;
    }
    return null;
  }

  #name(offset: number): string {
    const p = lib().bpf.btf__name_by_offset(this.#ptr, offset);
    return p === null ? "" : Deno.UnsafePointerView.getCString(p);
  }

  close(): void {
    if (this.#ptr) lib().bpf.btf__free(this.#ptr);
    this.#ptr = null;
  }
}
