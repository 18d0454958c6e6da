import assert from "node:assert/strict";
import {
  cpuInMask,
  cpuMaskOf,
  cpuMaskWordCount,
  cpusInMask,
  describeCpus,
  formatCpuMask,
  nrCpusFromList,
  parseCpuMask,
  withCpu,
} from "../../src/kernel/cpumask.ts";
import {
  formatSysctlValues,
  readSysctl,
  sysctlWLine,
  writeSysctl,
} from "../../src/kernel/sysctl.ts";

const MAX_CPUS = 256;
const WORDS = cpuMaskWordCount(MAX_CPUS); // 8 groups of 32 bits

/** The mask text for one CPU, computed independently with BigInt: hex, commas every 8 digits. */
function expectedText(cpus: number[], words: number): string {
  let v = 0n;
  for (const c of cpus) v |= 1n << BigInt(c);
  const hex = v.toString(16).padStart(words * 8, "0");
  const groups = hex.match(/.{8}/g)!;
  groups[0] = parseInt(groups[0], 16).toString(16); // first group unpadded
  return groups.join(",");
}

Deno.test("cpumask: each single CPU 0..255 formats as the kernel's hex groups and parses back", () => {
  assert.equal(WORDS, 8);
  for (let cpu = 0; cpu < MAX_CPUS; cpu++) {
    const mask: number[] = cpuMaskOf([cpu], WORDS)!;
    const text = formatCpuMask(mask);
    assert.equal(text, expectedText([cpu], WORDS), `CPU ${cpu}`);
    assert.deepEqual(parseCpuMask(text), mask, `CPU ${cpu} round trip`);
    assert.deepEqual(cpusInMask(mask), [cpu], `CPU ${cpu} alone`);
    assert.ok(cpuInMask(mask, cpu));
    assert.ok(!cpuInMask(mask, (cpu + 1) % MAX_CPUS));
  }
});

Deno.test("cpumask: CPU 10 is hex 400, CPU 4 hex 10 (bpftune wrote decimal: 16 = CPUs 1, 2, 4)", () => {
  assert.equal(formatCpuMask(cpuMaskOf([10], 1)!), "400");
  assert.equal(formatCpuMask(cpuMaskOf([10], 2)!), "0,00000400");
  // bpftune's "16" for CPU 4 read as hex is CPUs 1 and 4.
  assert.deepEqual(cpusInMask(parseCpuMask("16")!), [1, 2, 4]);
  assert.equal(formatCpuMask(cpuMaskOf([4], 1)!), "10");
});

Deno.test("cpumask: ranges, CPUs >= 32 and >= 64, the sign bit of a word", () => {
  const range = cpuMaskOf([0, 1, 2, 3, 8, 9, 10, 11], 1)!;
  assert.equal(formatCpuMask(range), "f0f");
  assert.equal(describeCpus(range), "0-3,8-11");
  assert.equal(formatCpuMask(cpuMaskOf([31], 1)!), "80000000");
  assert.deepEqual(cpuMaskOf([31], 1), [0x8000_0000]);
  assert.equal(formatCpuMask(cpuMaskOf([32], 2)!), "1,00000000");
  assert.equal(formatCpuMask(cpuMaskOf([63, 64], 3)!), "1,80000000,00000000");
  assert.equal(formatCpuMask(cpuMaskOf([0, 255], 8)!), expectedText([0, 255], 8));
  const all = cpuMaskOf([...Array(256).keys()], 8)!;
  assert.equal(formatCpuMask(all), Array(8).fill("ffffffff").join(","));
  assert.equal(describeCpus(all), "0-255");
  assert.equal(describeCpus([0]), "none");
  const ranges = cpuMaskOf([5, 6, 7, 40, 100, 101], 4)!;
  assert.deepEqual(parseCpuMask(formatCpuMask(ranges)), ranges);
  assert.equal(describeCpus(ranges), "5-7,40,100-101");
});

Deno.test("cpumask: a CPU beyond the mask does not fit; adding is idempotent", () => {
  assert.equal(withCpu([0], 32), null);
  assert.equal(cpuMaskOf([64], 2), null);
  assert.equal(withCpu([0], -1), null);
  assert.deepEqual(withCpu(withCpu([0, 0], 33)!, 33), [2, 0]);
});

Deno.test("cpumask: the kernel's own printing parses (zero-padded first group, newline)", () => {
  assert.deepEqual(parseCpuMask("00,00000400\n"), [0, 1024]);
  assert.deepEqual(parseCpuMask("0"), [0]);
  assert.deepEqual(parseCpuMask("FF"), [255]);
  for (const bad of ["", "g", "1,,2", "123456789", "0x10", "1 2", "-1"]) {
    assert.equal(parseCpuMask(bad), null, JSON.stringify(bad));
  }
  assert.throws(() => formatCpuMask([2 ** 32]), RangeError);
  assert.throws(() => formatCpuMask([]), RangeError);
});

Deno.test("cpumask: word count and nr_cpu_ids from the possible list", () => {
  assert.deepEqual([1, 2, 32, 33, 64, 65, 256].map(cpuMaskWordCount), [1, 1, 1, 2, 2, 3, 8]);
  assert.equal(nrCpusFromList("0-1\n"), 2);
  assert.equal(nrCpusFromList("0,2-5"), 6);
  assert.equal(nrCpusFromList("0"), 1);
  assert.equal(nrCpusFromList("x"), null);
});

Deno.test("sysctl: flow_limit_cpu_bitmap is read and written as a hex CPU mask", () => {
  const root = Deno.makeTempDirSync({ prefix: "bpfp-cpumask-" });
  try {
    Deno.mkdirSync(`${root}/net/core`, { recursive: true });
    const path = `${root}/net/core/flow_limit_cpu_bitmap`;
    Deno.writeTextFileSync(path, "00000000,00000400\n");
    const name = "net.core.flow_limit_cpu_bitmap";
    assert.deepEqual(readSysctl(name, { procRoot: root }), [0, 1024]);
    writeSysctl(name, [1, 0x8000_0000], { procRoot: root, min: 0, max: 0xffff_ffff });
    assert.equal(Deno.readTextFileSync(path), "1,80000000\n");
    assert.equal(formatSysctlValues([0, 1024], name), "0,00000400");
    assert.equal(
      sysctlWLine(name, [0, 1024]),
      "sysctl -w net.core.flow_limit_cpu_bitmap=0,00000400",
    );
    Deno.writeTextFileSync(path, "16 32\n");
    assert.throws(() => readSysctl(name, { procRoot: root }), /expected a hex CPU mask/);
    // Other sysctls keep their decimal form.
    assert.equal(formatSysctlValues([1024], "net.core.netdev_max_backlog"), "1024");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
