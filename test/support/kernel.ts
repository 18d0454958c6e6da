/** Test helpers that look at the real kernel: loaded programs, root, namespaces. */
import { execFileSync } from "node:child_process";

export const IS_ROOT = Deno.uid() === 0;

/** Names of loaded BPF programs that start with `prefix` (the kernel keeps 15 characters). */
export function loadedPrograms(prefix: string): string[] {
  const out = execFileSync("bpftool", ["prog", "show", "--json"], { encoding: "utf8" });
  return (JSON.parse(out) as { name?: string }[])
    .map((p) => p.name ?? "")
    .filter((n) => n.startsWith(prefix.slice(0, 15)));
}

/** Waits until `cond` holds, polling every `stepMs`, for at most `timeoutMs`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  stepMs = 20,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return await cond();
}
