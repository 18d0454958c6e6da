/**
 * tracefs, which classic tracepoint and legacy kprobe attachment need (libbpf reads event ids from
 * it). Systemd mounts it at boot; minimal systems and some VMs do not. bpfpilot mounts it at the
 * kernel's designated mount point only when a hook really needs it, and unmounts what it mounted.
 */
import { mountOwn } from "./own_mount.ts";

export const TRACEFS_DIRS = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

export function tracefsMounted(): string | null {
  for (const d of TRACEFS_DIRS) {
    try {
      Deno.statSync(`${d}/events`);
      return d;
    } catch {
      // not there
    }
  }
  return null;
}

export function tracefsSupported(): boolean {
  try {
    return /\btracefs\b/.test(Deno.readTextFileSync("/proc/filesystems"));
  } catch {
    return false;
  }
}

/** A mount this process made; `release()` undoes it (lazily, so a busy mount cannot fail it). */
export interface TracefsMount {
  dir: string;
  ours: boolean;
  release(): void;
}

/** Returns the mounted tracefs, mounting it at /sys/kernel/tracing when absent. */
export function ensureTracefs(): TracefsMount {
  const existing = tracefsMounted();
  if (existing) return { dir: existing, ours: false, release() {} };
  if (!tracefsSupported()) {
    throw new Error("this kernel has no tracefs (CONFIG_TRACING is off)");
  }
  const dir = TRACEFS_DIRS[0];
  const mount = mountOwn("nodev", dir, "tracefs");
  if (typeof mount === "number") {
    throw new Error(
      `tracefs is not mounted and mounting it at ${dir} failed (errno ${mount}); ` +
        `mount it with \`mount -t tracefs nodev ${dir}\``,
    );
  }
  return { dir, ours: true, release: () => mount.release() };
}
