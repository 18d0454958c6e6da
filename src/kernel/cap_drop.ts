/**
 * Dropping capabilities for the whole daemon. Capabilities belong to threads, and Deno's threads
 * exist before any JavaScript runs, so no call from JavaScript can lower them all. But a new
 * program image takes its capabilities from the one thread that calls execve: so the main
 * thread lowers its bounding set, clears its inheritable and ambient sets, sets no_new_privs and
 * executes the same program again (/proc/self/exe, the exact argv and environment, plus a marker).
 * For root the new image's permitted and effective sets are then the bounding set, in every
 * thread it starts. Same pid, same open descriptors (the `-D` readiness pipe), same stdio.
 */
import {
  capabilityNames,
  type KeptCapability,
  keptMask,
  parseCapabilities,
} from "./capabilities.ts";
import { errnoOf as errno, libcOrError } from "./libc.ts";

/** Set in the re-executed image: it is bounded already (never re-execute twice). */
export const BOUNDED_ENV = "BPFPILOT_CAPS_BOUNDED";

const PR_CAPBSET_DROP = 24;
const PR_SET_NO_NEW_PRIVS = 38;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const RLIMIT_MEMLOCK = 8;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;
const EPERM = 1;
const EINVAL = 22;

export type CapabilityOutcome =
  | { kind: "bounded"; kept: string[] }
  | { kind: "kept-all"; reason: string };

function ownCapabilities() {
  return parseCapabilities(Deno.readTextFileSync("/proc/self/status"));
}

/** NUL-separated /proc/self/{cmdline,environ} as a NULL-terminated char*[] (kept alive by `keep`). */
function pointerArray(raw: Uint8Array, keep: Uint8Array[], extra: string[] = []): Uint8Array {
  const strings: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] !== 0) continue;
    strings.push(raw.slice(start, i + 1));
    start = i + 1;
  }
  for (const s of extra) strings.push(new TextEncoder().encode(`${s}\0`));
  const table = new BigUint64Array(strings.length + 1);
  strings.forEach((s, i) => {
    keep.push(s);
    table[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s)));
  });
  return new Uint8Array(table.buffer);
}

/**
 * In a bounded image: reports the kept set (KEPT_CAPABILITIES and `extra`). Otherwise, as root: lowers the bounding set to the
 * kept capabilities and re-executes, so this call does not return; when that cannot be done
 * (no CAP_SETPCAP, no FFI, execve refused) it reports why and the daemon runs on as it is.
 */
export function dropCapabilities(extra: readonly KeptCapability[] = []): CapabilityOutcome {
  const keep = keptMask(extra);
  if (Deno.env.get(BOUNDED_ENV) !== undefined) {
    Deno.env.delete(BOUNDED_ENV); // programs the daemon starts are not bounded by us
    const { bounding } = ownCapabilities();
    if (bounding & ~keep) {
      return { kind: "kept-all", reason: "the bounding set was not lowered before re-executing" };
    }
    return { kind: "bounded", kept: capabilityNames(bounding) };
  }
  if (Deno.uid() !== 0) return { kind: "kept-all", reason: "not running as root" };
  const libc = libcOrError();
  if (libc instanceof Error) {
    return { kind: "kept-all", reason: `libc unavailable (${libc.message})` };
  }
  const before = ownCapabilities();
  // Already bounded (systemd's CapabilityBoundingSet=): nothing above the kept set to lose.
  if (!(before.bounding & ~keep) && !before.inheritable && !before.ambient) {
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1n, 0n, 0n, 0n);
    return { kind: "bounded", kept: capabilityNames(before.bounding) };
  }
  // Old kernels charge BPF memory to RLIMIT_MEMLOCK; raising it needs CAP_SYS_RESOURCE, which
  // goes, and limits survive execve: raise it now (where allowed).
  const unlimited = new BigUint64Array([0xffffffffffffffffn, 0xffffffffffffffffn]);
  libc.setrlimit(RLIMIT_MEMLOCK, new Uint8Array(unlimited.buffer));
  for (let bit = 0; bit < 64; bit++) {
    if (!(before.bounding & (1n << BigInt(bit))) || keep & (1n << BigInt(bit))) continue;
    if (libc.prctl(PR_CAPBSET_DROP, BigInt(bit), 0n, 0n, 0n) === 0) continue;
    const e = errno(libc);
    return {
      kind: "kept-all",
      reason: e === EPERM
        ? "no CAP_SETPCAP to lower the bounding set"
        : `prctl(PR_CAPBSET_DROP, ${bit}) failed (errno ${e})`,
    };
  }
  if (libc.prctl(PR_CAP_AMBIENT, BigInt(PR_CAP_AMBIENT_CLEAR_ALL), 0n, 0n, 0n) !== 0) {
    if (errno(libc) !== EINVAL) {
      return { kind: "kept-all", reason: `clearing the ambient set failed (errno ${errno(libc)})` };
    }
  }
  // Inheritable to zero: for root, permitted after execve is bounding | inheritable.
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0]);
  const data = new Uint32Array(6); // two of {effective, permitted, inheritable}
  if (
    libc.capget(new Uint8Array(header.buffer), new Uint8Array(data.buffer)) !== 0 ||
    ((data[2] = data[5] = 0),
      libc.capset(new Uint8Array(header.buffer), new Uint8Array(data.buffer)) !== 0)
  ) {
    const e = errno(libc);
    return { kind: "kept-all", reason: `clearing the inheritable set failed (errno ${e})` };
  }
  if (libc.prctl(PR_SET_NO_NEW_PRIVS, 1n, 0n, 0n, 0n) !== 0) {
    const e = errno(libc);
    return { kind: "kept-all", reason: `prctl(PR_SET_NO_NEW_PRIVS) failed (errno ${e})` };
  }
  const keepAlive: Uint8Array[] = [];
  const path = new TextEncoder().encode("/proc/self/exe\0");
  const argv = pointerArray(Deno.readFileSync("/proc/self/cmdline"), keepAlive);
  const envp = pointerArray(Deno.readFileSync("/proc/self/environ"), keepAlive, [
    `${BOUNDED_ENV}=1`,
  ]);
  libc.execve(path, argv, envp);
  // Only reached when execve failed; the bounding set is lower, the running threads are not.
  const e = errno(libc);
  return { kind: "kept-all", reason: `re-executing failed (errno ${e})` };
}
