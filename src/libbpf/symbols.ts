/**
 * Deno FFI signatures of the libbpf and libc symbols bpfpilot uses (x86_64 and aarch64 SysV).
 * Symbols that appeared after libbpf 1.0 are optional; `loader.ts` refuses libbpf < 1.0 before
 * binding this table, because 0.x returns error pointers and has same-name ABI changes.
 */

export const LIBBPF_SYMBOLS = {
  libbpf_major_version: { parameters: [], result: "u32", optional: true },
  libbpf_minor_version: { parameters: [], result: "u32", optional: true },
  libbpf_version_string: { parameters: [], result: "pointer", optional: true },
  libbpf_set_print: { parameters: ["function"], result: "function" },
  libbpf_strerror: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  libbpf_num_possible_cpus: { parameters: [], result: "i32" },
  libbpf_probe_bpf_helper: { parameters: ["u32", "u32", "pointer"], result: "i32", optional: true },
  libbpf_probe_bpf_map_type: { parameters: ["u32", "pointer"], result: "i32", optional: true },

  bpf_object__open_mem: { parameters: ["buffer", "usize", "buffer"], result: "pointer" },
  bpf_object__load: { parameters: ["pointer"], result: "i32" },
  bpf_object__close: { parameters: ["pointer"], result: "void" },
  bpf_object__next_program: { parameters: ["pointer", "pointer"], result: "pointer" },
  bpf_object__next_map: { parameters: ["pointer", "pointer"], result: "pointer" },
  bpf_object__find_program_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },
  bpf_object__find_map_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },

  bpf_program__name: { parameters: ["pointer"], result: "pointer" },
  bpf_program__section_name: { parameters: ["pointer"], result: "pointer" },
  bpf_program__set_autoload: { parameters: ["pointer", "bool"], result: "i32" },
  bpf_program__autoload: { parameters: ["pointer"], result: "bool" },
  bpf_program__type: { parameters: ["pointer"], result: "u32" },
  bpf_program__fd: { parameters: ["pointer"], result: "i32" },
  bpf_program__set_attach_target: { parameters: ["pointer", "i32", "buffer"], result: "i32" },
  bpf_program__attach: { parameters: ["pointer"], result: "pointer" },
  bpf_program__attach_tracepoint: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "pointer",
  },
  bpf_program__attach_raw_tracepoint: { parameters: ["pointer", "buffer"], result: "pointer" },
  bpf_program__attach_kprobe: { parameters: ["pointer", "bool", "buffer"], result: "pointer" },
  bpf_program__attach_trace: { parameters: ["pointer"], result: "pointer" },
  bpf_program__attach_cgroup: { parameters: ["pointer", "i32"], result: "pointer" },
  bpf_link__destroy: { parameters: ["pointer"], result: "i32" },

  bpf_map__fd: { parameters: ["pointer"], result: "i32" },
  bpf_map__name: { parameters: ["pointer"], result: "pointer" },
  bpf_map__type: { parameters: ["pointer"], result: "u32" },
  bpf_map__key_size: { parameters: ["pointer"], result: "u32" },
  bpf_map__value_size: { parameters: ["pointer"], result: "u32" },
  bpf_map__max_entries: { parameters: ["pointer"], result: "u32" },
  bpf_map_lookup_elem: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bpf_map_update_elem: { parameters: ["i32", "buffer", "buffer", "u64"], result: "i32" },
  bpf_map_delete_elem: { parameters: ["i32", "buffer"], result: "i32" },
  bpf_map_get_next_key: { parameters: ["i32", "buffer", "buffer"], result: "i32" },

  ring_buffer__new: { parameters: ["i32", "function", "pointer", "pointer"], result: "pointer" },
  ring_buffer__add: { parameters: ["pointer", "i32", "function", "pointer"], result: "i32" },
  ring_buffer__consume: { parameters: ["pointer"], result: "i32" },
  ring_buffer__epoll_fd: { parameters: ["pointer"], result: "i32" },
  ring_buffer__free: { parameters: ["pointer"], result: "void" },

  btf__load_vmlinux_btf: { parameters: [], result: "pointer" },
  btf__find_by_name_kind: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  btf__type_by_id: { parameters: ["pointer", "u32"], result: "pointer" },
  btf__name_by_offset: { parameters: ["pointer", "u32"], result: "pointer" },
  btf__free: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

export type LibbpfSymbols = Deno.DynamicLibrary<typeof LIBBPF_SYMBOLS>["symbols"];
