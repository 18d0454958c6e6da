/**
 * libbpf parses the kernel's BTF (megabytes) for every object it loads and frees it after. glibc
 * gives blocks that large straight back to the kernel (mmap'd, or trimmed off the heap top once
 * the copy and its read buffer are both freed), so each parse pays its ~1,400 page faults again:
 * most of a parse's time on a VM (~95 ms against ~5 ms on pages already faulted in). While the
 * daemon loads its tuners, large blocks come from the heap and freed memory stays for the next
 * parse; afterwards it goes back to the kernel (malloc_trim).
 */
import type { Libc } from "../kernel/libc.ts";

// mallopt(3) parameters.
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
/** glibc refuses an mmap threshold above 32 MiB on 64-bit (HEAP_MAX_SIZE / 2). */
const KEEP_MMAP_THRESHOLD = 32 * 1024 * 1024;
const KEEP_TRIM_THRESHOLD = 512 * 1024 * 1024;
const PAGE = 4096;

/** What libbpf parses: its size is the largest block a load frees. */
const KERNEL_BTF = "/sys/kernel/btf/vmlinux";

/**
 * Where glibc's dynamic rule leaves its thresholds once a block of `bytes` was mmap'd and freed
 * (mmap threshold: that block; trim threshold: twice it), never below its 128 KiB defaults.
 */
export function thresholdsAfterFreeing(bytes: number): { mmap: number; trim: number } {
  const mmap = Math.min(
    KEEP_MMAP_THRESHOLD,
    Math.max(128 * 1024, Math.ceil(bytes / PAGE) * PAGE),
  );
  return { mmap, trim: 2 * mmap };
}

function kernelBtfBytes(): number {
  try {
    return Deno.statSync(KERNEL_BTF).size;
  } catch {
    return 0;
  }
}

/**
 * Keeps freed parse memory until the returned function is called (idempotent). Setting a
 * threshold ends glibc's dynamic adjustment of both, so the release sets them where that rule
 * would have put them after the loads (the BTF copy the largest block freed), as before.
 */
export function keepParseMemory(
  libc: Pick<Libc, "mallopt" | "malloc_trim">,
  largestFreed: number = kernelBtfBytes(),
): () => void {
  libc.mallopt(M_MMAP_THRESHOLD, KEEP_MMAP_THRESHOLD);
  libc.mallopt(M_TRIM_THRESHOLD, KEEP_TRIM_THRESHOLD);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const after = thresholdsAfterFreeing(largestFreed);
    libc.mallopt(M_TRIM_THRESHOLD, after.trim);
    libc.mallopt(M_MMAP_THRESHOLD, after.mmap);
    libc.malloc_trim(0n);
  };
}
