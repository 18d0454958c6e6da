/**
 * CPU masks in the kernel's text form: what `"%*pb"` prints and `bitmap_parse()` (via
 * `cpumask_parse`) reads, e.g. net.core.flow_limit_cpu_bitmap. Hexadecimal in 32-bit groups, most
 * significant group first, groups separated by commas: CPU 10 on a 64-CPU machine is
 * "00000000,00000400". Held as `number[]` of 32-bit words in that same order, which is how the
 * daemon reads, journals and writes such a sysctl.
 *
 * bpftune wrote `1 << cpu` in decimal: CPU 4 became "16", which the kernel reads as CPUs 1 and 4,
 * and the 32-bit shift overflowed past CPU 31 (bpftune-behaviour.md §5.3).
 */

export const CPU_MASK_WORD_BITS = 32;
const WORD_MAX = 0xffff_ffff;
const GROUP = /^[0-9a-fA-F]{1,8}$/;

/** How many 32-bit groups the kernel prints for `nrCpus` CPUs (nr_cpu_ids); at least 1. */
export function cpuMaskWordCount(nrCpus: number): number {
  return Math.max(1, Math.ceil(nrCpus / CPU_MASK_WORD_BITS));
}

/** "00000000,00000400" → [0, 1024]; null when it is not a mask of 32-bit hex groups. */
export function parseCpuMask(text: string): number[] | null {
  const groups = text.trim().split(",");
  if (!groups.every((g) => GROUP.test(g))) return null;
  return groups.map((g) => parseInt(g, 16));
}

/** True when every word is a 32-bit unsigned integer (and there is at least one). */
export function isCpuMask(words: readonly number[]): boolean {
  return words.length > 0 &&
    words.every((w) => Number.isSafeInteger(w) && w >= 0 && w <= WORD_MAX);
}

/**
 * [0, 1024] → "0,00000400": the first group without padding, the others eight digits, which
 * bitmap_parse() reads as written. Throws on words that are not 32-bit unsigned integers.
 */
export function formatCpuMask(words: readonly number[]): string {
  if (!isCpuMask(words)) {
    throw new RangeError(`not a CPU mask of 32-bit words: ${words.join(" ")}`);
  }
  return words.map((w, i) => i === 0 ? w.toString(16) : w.toString(16).padStart(8, "0"))
    .join(",");
}

/** Where CPU `cpu`'s bit lives in a mask of `wordCount` words (most significant word first). */
function position(cpu: number, wordCount: number): { word: number; bit: number } | null {
  if (!Number.isSafeInteger(cpu) || cpu < 0) return null;
  const fromEnd = Math.floor(cpu / CPU_MASK_WORD_BITS);
  if (fromEnd >= wordCount) return null;
  return { word: wordCount - 1 - fromEnd, bit: cpu % CPU_MASK_WORD_BITS };
}

/** Whether CPU `cpu` is in the mask (false for CPUs beyond it). */
export function cpuInMask(words: readonly number[], cpu: number): boolean {
  const p = position(cpu, words.length);
  // Division, not `>>`: a 32-bit shift of bit 31 goes negative in JavaScript.
  return p !== null && Math.floor(words[p.word] / 2 ** p.bit) % 2 === 1;
}

/** The mask with CPU `cpu` added; null when the mask has no room for that CPU. */
export function withCpu(words: readonly number[], cpu: number): number[] | null {
  const p = position(cpu, words.length);
  if (p === null || !isCpuMask(words)) return null;
  const out = [...words];
  if (!cpuInMask(words, cpu)) out[p.word] += 2 ** p.bit;
  return out;
}

/** A mask of `wordCount` words holding exactly `cpus`; null if one does not fit. */
export function cpuMaskOf(cpus: readonly number[], wordCount: number): number[] | null {
  let words: number[] | null = new Array(Math.max(1, wordCount)).fill(0);
  for (const cpu of cpus) {
    words = withCpu(words!, cpu);
    if (words === null) return null;
  }
  return words;
}

/** The CPUs in a mask, ascending. */
export function cpusInMask(words: readonly number[]): number[] {
  const out: number[] = [];
  for (let cpu = 0; cpu < words.length * CPU_MASK_WORD_BITS; cpu++) {
    if (cpuInMask(words, cpu)) out.push(cpu);
  }
  return out;
}

/** "0-3,8,10" (the kernel's list form), "none" for an empty mask: for logs. */
export function describeCpus(words: readonly number[]): string {
  const cpus = cpusInMask(words);
  if (cpus.length === 0) return "none";
  const parts: string[] = [];
  for (let i = 0; i < cpus.length;) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j] + 1) j++;
    parts.push(i === j ? `${cpus[i]}` : `${cpus[i]}-${cpus[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/**
 * Possible CPUs (nr_cpu_ids) from a list such as /sys/devices/system/cpu/possible ("0-3", "0,2-5"):
 * the highest CPU + 1; null when the text is not a CPU list.
 */
export function nrCpusFromList(text: string): number | null {
  const t = text.trim();
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(t)) return null;
  return Math.max(...t.split(/[,-]/).map(Number)) + 1;
}

/** nr_cpu_ids of this machine, from sysfs; falls back to the online count the runtime sees. */
export function possibleCpus(path = "/sys/devices/system/cpu/possible"): number {
  try {
    const n = nrCpusFromList(Deno.readTextFileSync(path));
    if (n !== null) return n;
  } catch {
    // no sysfs (a container without it): the runtime's count
  }
  return navigator.hardwareConcurrency || 1;
}
