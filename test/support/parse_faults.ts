/**
 * Run as a child by test/unit/parse_memory_test.ts: the minor page faults of two parses of the
 * kernel's BTF under keepParseMemory, in a process that has parsed nothing before. In the test
 * runner's own process an earlier test's parse (and glibc's dynamic thresholds after it) may
 * already hold the pages, and the first parse then faults little (seen: 138).
 */
import { keepParseMemory } from "../../src/libbpf/parse_memory.ts";
import { KernelBtf } from "../../src/libbpf/btf.ts";
import { lib } from "../../src/libbpf/runtime.ts";

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

// `--without`: the control, glibc as it is.
const keep = Deno.args[0] !== "--without";
const release = keep ? keepParseMemory(lib().libc) : () => {};
try {
  const first = faultsOfOneParse();
  const second = faultsOfOneParse();
  console.log(JSON.stringify({ first, second }));
} finally {
  release();
}
