import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { keepParseMemory, thresholdsAfterFreeing } from "../../src/libbpf/parse_memory.ts";

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

const PARSE_FAULTS = new URL("../support/parse_faults.ts", import.meta.url).pathname;

/** Faults of a first and a second parse in a fresh process (test/support/parse_faults.ts). */
async function parseFaults(...args: string[]): Promise<{ first: number; second: number }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", PARSE_FAULTS, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(text);
}

Deno.test("keepParseMemory: the next parse of the kernel's BTF reuses the pages of the last", async () => {
  if (!existsSync("/sys/kernel/btf/vmlinux")) return; // no kernel BTF: nothing libbpf parses
  const { first, second } = await parseFaults();
  // A 5 MB BTF is ~2,700 fresh pages (the file read and libbpf's copy of it).
  assert.ok(first > 500, `the first parse faulted its pages in (${first} faults)`);
  assert.ok(second < first / 4, `the second parse took ${second} faults, the first ${first}`);
  // The control: without it glibc maps the large blocks afresh (here ~2,800 faults again).
  const plain = await parseFaults("--without");
  assert.ok(plain.second > plain.first / 4, `without keepParseMemory: ${JSON.stringify(plain)}`);
});
