/** `support` text: one line per program tried, the chosen one alone marked. */
import assert from "node:assert/strict";
import { renderSupportText, type SupportReport } from "../../src/cli/support.ts";

Deno.test("support lists two programs of one kind and target apart, marking only the chosen", () => {
  const report: SupportReport = {
    level: "full",
    netnsCookie: true,
    libbpf: { path: "/usr/lib/libbpf.so.1", version: "1.1" },
    kernel: { release: "6.18", btf: true },
    features: {
      release: "6.18",
      btf: true,
      ringbuf: true,
      percpuLookupHelper: true,
      netnsCookie: true,
      tracefs: "mounted",
      kprobes: false,
      cgroup2: "/sys/fs/cgroup",
    } as SupportReport["features"],
    kinds: [],
    hooks: [{
      tuner: "sysctl",
      hook: "sysctl_write",
      optional: false,
      chosen: "cgroup",
      target: "sysctl",
      program: "bpfp_sy_write",
      tried: [
        { kind: "cgroup", target: "sysctl", ok: true, reason: "", program: "bpfp_sy_write" },
        { kind: "cgroup", target: "sysctl", ok: true, reason: "", program: "bpfp_sy_write_nt" },
      ],
    }],
  };
  const lines = renderSupportText(report).split("\n").filter((l) => /^\s+[*+-] /.test(l));
  assert.equal(lines.length, 2);
  assert.match(lines[0], /^\s+\* cgroup sysctl \(bpfp_sy_write\)\s+works$/);
  assert.match(lines[1], /^\s+\+ cgroup sysctl \(bpfp_sy_write_nt\)\s+works$/);
});
