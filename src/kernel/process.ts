/** Process identity: the name `pgrep bpfpilot` finds, even under `deno run`. */
const PR_SET_NAME = 15;

export function setProcessName(name: string): void {
  try {
    const libc = Deno.dlopen("libc.so.6", {
      prctl: { parameters: ["i32", "buffer", "u64", "u64", "u64"], result: "i32" },
    });
    libc.symbols.prctl(PR_SET_NAME, new TextEncoder().encode(name.slice(0, 15) + "\0"), 0n, 0n, 0n);
    libc.close();
  } catch {
    // cosmetic: a process that cannot rename itself still works
  }
}

export function isRoot(): boolean {
  return Deno.uid() === 0;
}
