import assert from "node:assert/strict";
import { libbpfCandidates } from "../../src/libbpf/loader.ts";
import { sectionTarget } from "../../src/libbpf/load.ts";

const env = (vars: Record<string, string>) => ({ get: (k: string) => vars[k] });

Deno.test("libbpf search: the build's layout first, then the others, then the bare soname", () => {
  const lib64 = libbpfCandidates(env({}), "lib64");
  assert.equal(lib64[0], "/usr/lib64/libbpf.so.1");
  assert.ok(lib64.indexOf("/usr/lib/libbpf.so.1") > lib64.indexOf("/usr/lib64/libbpf.so.1"));
  assert.ok(lib64.indexOf("libbpf.so.1") > lib64.indexOf("/usr/lib/libbpf.so.1"));
  const lib = libbpfCandidates(env({}), "lib");
  assert.equal(lib[0], "/usr/lib/libbpf.so.1");
  const multi = libbpfCandidates(env({}), "multiarch");
  assert.match(multi[0], /^\/usr\/lib\/(x86_64|aarch64)-linux-gnu\/libbpf\.so\.1$/);
});

Deno.test("libbpf search: every .so.1 before any .so.0, so 0.x is only found to be reported", () => {
  const c = libbpfCandidates(env({}), null);
  const lastV1 = Math.max(...c.map((p, i) => p.endsWith(".so.1") ? i : -1));
  const firstV0 = c.findIndex((p) => p.endsWith(".so.0"));
  assert.ok(lastV1 < firstV0);
});

Deno.test("libbpf search: BPFPILOT_LIBBPF_DIR confines the search (no system fallback)", () => {
  const c = libbpfCandidates(env({ BPFPILOT_LIBBPF_DIR: "/empty" }), "multiarch");
  assert.deepEqual(c, ["/empty/libbpf.so.1", "/empty/libbpf.so.0"]);
  assert.deepEqual(libbpfCandidates(env({ BPFPILOT_LIBBPF: "/x/libbpf.so" }), "lib"), [
    "/x/libbpf.so",
  ]);
});

Deno.test("section names map to the kernel target BTF can confirm", () => {
  assert.deepEqual(sectionTarget("fentry/tcp_sndbuf_expand"), {
    kind: "function",
    name: "tcp_sndbuf_expand",
  });
  assert.deepEqual(sectionTarget("kprobe/tcp_v4_connect+4"), {
    kind: "function",
    name: "tcp_v4_connect",
  });
  assert.deepEqual(sectionTarget("tp/tcp/tcp_probe"), { kind: "tracepoint", name: "tcp_probe" });
  assert.deepEqual(sectionTarget("tp_btf/tcp_probe"), { kind: "tracepoint", name: "tcp_probe" });
  assert.equal(sectionTarget("sockops"), null);
  assert.equal(sectionTarget("cgroup/sysctl"), null);
});
