/** Building blocks: libbpf binding costs, hook probing, and the bundle's own start. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import selftest from "../../dist/bpf/selftest.bpf.o" with { type: "bytes" };
import { lib, u32Key } from "../../src/libbpf/mod.ts";
import { loadObject } from "../../src/libbpf/load.ts";
import { probeKernel } from "../../src/kernel/probe.ts";
import { TUNER_HOOKS } from "../../src/tuners/hooks_registry.ts";
import { row, section } from "./report.ts";

function ms(t0: number) {
  return `${(performance.now() - t0).toFixed(1)} ms`;
}

export function foundationSection(root: string, deno: string): void {
  section("foundation");
  let t = performance.now();
  lib();
  row("dlopen libbpf + libc", ms(t));

  t = performance.now();
  const { object } = loadObject(selftest, { name: "bpfp_bench" });
  row("open from bytes + load (3-program object)", ms(t));
  const m = object.map("bpfp_config");
  const key = u32Key(0), val = new Uint8Array(m.lookupSize);
  const N = 100_000;
  t = performance.now();
  for (let i = 0; i < N; i++) m.update(key, val);
  row("map update", `${((performance.now() - t) * 1000 / N).toFixed(2)} µs`, `${N} calls`);
  t = performance.now();
  for (let i = 0; i < N; i++) m.lookup(key);
  row("map lookup", `${((performance.now() - t) * 1000 / N).toFixed(2)} µs`, `${N} calls`);
  const stats = object.map("bpfp_stats");
  t = performance.now();
  for (let i = 0; i < 10_000; i++) stats.sumU64(key);
  row("per-CPU sum over possible CPUs", `${((performance.now() - t) / 10).toFixed(2)} µs`);
  object.close();

  t = performance.now();
  probeKernel(TUNER_HOOKS, { cacheFile: null });
  row("hook probe, every declared hook (cold)", ms(t), "real loads + attaches");

  const bundle = join(root, "dist/bpfpilot.js");
  try {
    const r = spawnSync("/usr/bin/time", [
      "-f",
      "%e %M",
      deno,
      "run",
      "-A",
      "--no-config",
      bundle,
      "--version",
    ], {
      encoding: "utf8",
    });
    const [wall, rssKb] = r.stderr.trim().split("\n").pop()!.split(" ");
    row("bundle --version: wall", `${(Number(wall) * 1000).toFixed(0)} ms`);
    row("bundle --version: max RSS", `${(Number(rssKb) / 1024).toFixed(1)} MB`);
  } catch (e) {
    row("bundle --version", "n/a", (e as Error).message);
  }
}
