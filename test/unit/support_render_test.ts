/** `support` text: one line per program tried, the chosen one alone marked. */
import assert from "node:assert/strict";
import { renderSupportText, type SupportReport } from "../../src/cli/support.ts";

function report(extra: Partial<SupportReport> = {}): SupportReport {
  return {
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
    hooks: [],
    ...extra,
  };
}

Deno.test("support lists two programs of one kind and target apart, marking only the chosen", () => {
  const r = report({
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
  });
  const lines = renderSupportText(r).split("\n").filter((l) => /^\s+[*+-] /.test(l));
  assert.equal(lines.length, 2);
  assert.match(lines[0], /^\s+\* cgroup sysctl \(bpfp_sy_write\)\s+works$/);
  assert.match(lines[1], /^\s+\+ cgroup sysctl \(bpfp_sy_write_nt\)\s+works$/);
});

Deno.test("support lists each tuner's sysctls, marks the absent ones and wraps at 100 columns", () => {
  const names = Array.from({ length: 8 }, (_, i) => `net.ipv4.neigh.default.gc_thresh${i}`);
  const text = renderSupportText(report({
    tunables: [
      ...names.map((sysctl, i) => ({ tuner: "neigh_table", sysctl, present: i !== 2 })),
      { tuner: "net_buffer", sysctl: "net.core.high_order_alloc_disable", present: false },
    ],
  }));
  const lines = text.split("\n");
  const at = lines.findIndex((l) => l.startsWith("Sysctls the tuners may change"));
  assert.ok(at >= 0, text);
  const block = lines.slice(at + 1, lines.indexOf("", at));
  assert.ok(block.every((l) => l.length <= 100), block.join("\n"));
  assert.match(block[0], /^ {2}neigh_table: net\.ipv4\.neigh\.default\.gc_thresh0 /);
  assert.ok(block.join(" ").includes(" -net.ipv4.neigh.default.gc_thresh2 "));
  assert.ok(block.length > 2, "eight long names take more than one line");
  assert.equal(block.at(-1), "  net_buffer: -net.core.high_order_alloc_disable");
  const words = block.join(" ").split(/\s+/).filter((w) => w.includes("."));
  assert.equal(words.length, 9, "every sysctl once");
});

Deno.test("support without a tunables list (an older report) prints no sysctl section", () => {
  assert.ok(!renderSupportText(report()).includes("Sysctls the tuners may change"));
});
