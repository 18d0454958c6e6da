/** Process identity: the name `pgrep bpfpilot` finds, even under `deno run`. */
import { openLibc } from "./libc.ts";

const PR_SET_NAME = 15;

export function setProcessName(name: string): void {
  // Cosmetic: a process that cannot rename itself (no glibc) still works.
  const comm = new TextEncoder().encode(name.slice(0, 15) + "\0");
  openLibc()?.prctl_name(PR_SET_NAME, comm, 0n, 0n, 0n);
}

export function isRoot(): boolean {
  return Deno.uid() === 0;
}
