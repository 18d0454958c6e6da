// Harness self-test (kernel-matrix --smoke), run inside each guest: for each BPF object given,
// load and attach it through the system libbpf over Deno FFI (the daemon's own path), push
// loopback TCP traffic, and read the object's "hits" counter. One line per object:
//   FFI <object> load=ok|FAIL(<err>) attach=ok|FAIL|- hits=<n>
// Exit status: 1 when any object failed to load or attach.
const lib = Deno.dlopen("libbpf.so.1", {
  bpf_object__open_file: { parameters: ["buffer", "pointer"], result: "pointer" },
  bpf_object__next_program: { parameters: ["pointer", "pointer"], result: "pointer" },
  bpf_object__load: { parameters: ["pointer"], result: "i32" },
  bpf_object__find_map_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },
  bpf_object__close: { parameters: ["pointer"], result: "void" },
  bpf_program__attach: { parameters: ["pointer"], result: "pointer" },
  bpf_link__destroy: { parameters: ["pointer"], result: "i32" },
  bpf_map__lookup_elem: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "u64"],
    result: "i32",
  },
});
const cstr = (s: string) => new TextEncoder().encode(s + "\0");

/** Pushes 4 MiB through a loopback TCP connection so tcp_rcv_space_adjust runs. */
async function traffic(): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sink = (async () => {
    const conn = await listener.accept();
    const buf = new Uint8Array(16384);
    while ((await conn.read(buf)) !== null) { /* drain */ }
    conn.close();
  })();
  const { port } = listener.addr as Deno.NetAddr;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = new Uint8Array(65536);
  for (let i = 0; i < 64; i++) await conn.write(chunk);
  conn.close();
  await sink;
  listener.close();
}

let failed = 0;
for (const path of Deno.args) {
  const obj = lib.symbols.bpf_object__open_file(cstr(path), null);
  if (obj === null) {
    console.log(`FFI ${path} load=FAIL(open) attach=- hits=-1`);
    failed++;
    continue;
  }
  const err = lib.symbols.bpf_object__load(obj);
  let attach = "-";
  let hits = -1n;
  if (err === 0) {
    const prog = lib.symbols.bpf_object__next_program(obj, null);
    const link = lib.symbols.bpf_program__attach(prog);
    attach = link === null ? "FAIL" : "ok";
    if (link !== null) {
      await traffic();
      const map = lib.symbols.bpf_object__find_map_by_name(obj, cstr("hits"));
      const key = new Uint8Array(4);
      const value = new BigUint64Array(1);
      const lrc = lib.symbols.bpf_map__lookup_elem(
        map,
        key,
        4n,
        new Uint8Array(value.buffer),
        8n,
        0n,
      );
      if (lrc === 0) hits = value[0];
      lib.symbols.bpf_link__destroy(link);
    }
  }
  if (err !== 0 || attach !== "ok") failed++;
  const load = err === 0 ? "ok" : `FAIL(${err})`;
  console.log(`FFI ${path} load=${load} attach=${attach} hits=${hits}`);
  lib.symbols.bpf_object__close(obj);
}
Deno.exit(failed > 0 ? 1 : 0);
