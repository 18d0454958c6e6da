/**
 * Typed errors for libbpf failures, with messages in the product's words: what failed, why it
 * usually happens, and libbpf's own text. Raw errno names never reach the user alone.
 */

export type BpfErrorKind =
  | "permission"
  | "missing-target"
  | "not-supported"
  | "verifier"
  | "invalid"
  | "memory"
  | "busy"
  | "not-found"
  | "other";

const ERRNO: Record<number, { kind: BpfErrorKind; hint: string }> = {
  1: {
    kind: "permission",
    hint: "the kernel refused it (EPERM): run bpfpilot as root",
  },
  2: { kind: "not-found", hint: "not found (ENOENT)" },
  3: {
    kind: "missing-target",
    hint: "the kernel function or tracepoint it needs does not exist on this kernel (renamed, " +
      "inlined or not built in)",
  },
  7: { kind: "memory", hint: "a size limit was exceeded (E2BIG)" },
  12: {
    kind: "memory",
    hint: "the kernel could not allocate memory for it (a memory cgroup limit, or RLIMIT_MEMLOCK " +
      "on kernels before 5.11)",
  },
  13: { kind: "verifier", hint: "the BPF verifier rejected the program (EACCES)" },
  16: { kind: "busy", hint: "the resource is busy (EBUSY)" },
  22: {
    kind: "invalid",
    hint: "the kernel rejected it as invalid (EINVAL): usually a kernel too old for this program " +
      "or attach type, or a field layout that does not match",
  },
  95: { kind: "not-supported", hint: "not supported by this kernel (EOPNOTSUPP)" },
  524: { kind: "not-supported", hint: "not supported by this kernel (ENOTSUPP)" },
  4007: { kind: "verifier", hint: "the BPF verifier rejected the program" },
};

export class BpfError extends Error {
  readonly kind: BpfErrorKind;
  constructor(
    readonly operation: string,
    readonly errno: number,
    readonly libbpfText: string,
    readonly detail: string[] = [],
  ) {
    let info = ERRNO[errno] ?? { kind: "other" as const, hint: libbpfText };
    if (errno === 1 && Deno.uid() === 0) {
      info = {
        kind: "permission",
        hint: "the kernel refused it although bpfpilot runs as root (EPERM): a lockdown or " +
          "security policy of this kernel forbids this program type",
      };
    }
    super(`${operation} failed: ${info.hint}${libbpfText ? ` [libbpf: ${libbpfText}]` : ""}`);
    this.name = "BpfError";
    this.kind = info.kind;
  }
}

export function errorKindOf(errno: number): BpfErrorKind {
  return ERRNO[errno]?.kind ?? "other";
}
