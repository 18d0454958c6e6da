/** Kernel BTF lookups: does a function, tracepoint or type exist on the running kernel? */
import { cstr } from "./cstr.ts";
import { lib } from "./runtime.ts";

export const BTF_KIND = { STRUCT: 4, TYPEDEF: 8, FUNC: 12 } as const;

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
    if (!this.#ptr) throw new Error("kernel BTF is closed");
    return lib().bpf.btf__find_by_name_kind(this.#ptr, cstr(name), kind) > 0;
  }

  hasFunction(name: string): boolean {
    return this.has(name, BTF_KIND.FUNC);
  }

  /** Every tracepoint has a `btf_trace_<name>` typedef (what tp_btf attaches through). */
  hasTracepoint(name: string): boolean {
    return this.has(`btf_trace_${name}`, BTF_KIND.TYPEDEF);
  }

  close(): void {
    if (this.#ptr) lib().bpf.btf__free(this.#ptr);
    this.#ptr = null;
  }
}
