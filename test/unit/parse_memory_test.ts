import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { keepParseMemory, thresholdsAfterFreeing } from "../../src/libbpf/parse_memory.ts";
import { KernelBtf } from "../../src/libbpf/btf.ts";
import { lib } from "../../src/libbpf/runtime.ts";

const M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;

function fakeLibc() {
  const calls: string[] = [];
  return {
    calls,
    libc: {
      mallopt: (param: number, value: number) => (calls.push(`mallopt ${param} ${value}`), 1),
      malloc_trim: (pad: bigint) => (calls.push(`trim ${pad}`), 1),
    },
  };
}

Deno.test("keepParseMemory: large blocks from the heap and nothing trimmed until released", () => {
  const { calls, libc } = fakeLibc();
  const release = keepParseMemory(libc, 5_520_272);
  assert.deepEqual(calls, [
    `mallopt ${M_MMAP_THRESHOLD} ${32 << 20}`,
    `mallopt ${M_TRIM_THRESHOLD} ${512 << 20}`,
  ]);
  calls.length = 0;
  release();
  // Where glibc's own rule stands after freeing the 5.5 MB BTF copy: page-rounded, trim twice it.
  assert.deepEqual(calls, [
    `mallopt ${M_TRIM_THRESHOLD} ${2 * 5_521_408}`,
    `mallopt ${M_MMAP_THRESHOLD} 5521408`,
    "trim 0",
  ]);
  release();
  assert.equal(calls.length, 3, "a second release does nothing");
});

Deno.test("thresholdsAfterFreeing: never below glibc's defaults nor above its ceiling", () => {
  assert.deepEqual(thresholdsAfterFreeing(0), { mmap: 131072, trim: 262144 });
  assert.deepEqual(thresholdsAfterFreeing(1 << 30), { mmap: 32 << 20, trim: 64 << 20 });
});

/** Minor page faults of this process so far (/proc/self/stat, field 10). */
function minorFaults(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[7]);
}

function faultsOfOneParse(): number {
  const before = minorFaults();
  const btf = KernelBtf.load();
  btf?.close();
  return minorFaults() - before;
}

Deno.test("keepParseMemory: the next parse of the kernel's BTF reuses the pages of the last", () => {
  if (!existsSync("/sys/kernel/btf/vmlinux")) return; // no kernel BTF: nothing libbpf parses
  const release = keepParseMemory(lib().libc);
  try {
    const first = faultsOfOneParse();
    const second = faultsOfOneParse();
    // A 5 MB BTF is ~2,700 fresh pages (the file read and libbpf's copy of it).
    assert.ok(first > 500, `the first parse faulted its pages in (${first} faults)`);
    assert.ok(second < first / 4, `the second parse took ${second} faults, the first ${first}`);
  } finally {
    release();
  }
});
