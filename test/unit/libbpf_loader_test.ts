import assert from "node:assert/strict";
import { detectLayout, libbpfCandidates, type PathKind } from "../../src/libbpf/loader.ts";
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

/** A system described by its directories and symlinks; everything else is missing. */
const system = (dirs: string[], links: string[] = []): PathKind => (p) =>
  dirs.includes(p) ? "dir" : links.includes(p) ? "symlink" : "missing";
const triplet = Deno.build.arch === "aarch64" ? "aarch64-linux-gnu" : "x86_64-linux-gnu";

Deno.test("libbpf search: one binary finds each distribution's own libdir first", () => {
  // Arch/CachyOS: /usr/lib64 is a symlink to /usr/lib, no multiarch directory.
  const arch = detectLayout(system(["/usr/lib"], ["/usr/lib64", "/lib64"]));
  assert.equal(arch, "lib");
  assert.equal(libbpfCandidates(env({}), arch)[0], "/usr/lib/libbpf.so.1");
  // Fedora/RHEL/SUSE: a real /usr/lib64.
  assert.equal(detectLayout(system(["/usr/lib", "/usr/lib64"])), "lib64");
  // Debian/Ubuntu: the multiarch directory wins even where /usr/lib64 exists (it holds only ld.so).
  const debian = detectLayout(system(["/usr/lib", `/usr/lib/${triplet}`, "/usr/lib64"]));
  assert.equal(debian, "multiarch");
  assert.equal(libbpfCandidates(env({}), debian)[0], `/usr/lib/${triplet}/libbpf.so.1`);
});

Deno.test("libbpf search: with no layout baked in, this machine's is detected", () => {
  const debianHere = (() => {
    try {
      return Deno.lstatSync(`/usr/lib/${triplet}`).isDirectory;
    } catch {
      return false;
    }
  })();
  if (debianHere) assert.equal(detectLayout(), "multiarch");
  assert.equal(libbpfCandidates(env({}))[0], libbpfCandidates(env({}), detectLayout())[0]);
});

Deno.test("libbpf search: every .so.1 before any .so.0, so 0.x is only found to be reported", () => {
  const c = libbpfCandidates(env({}));
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
