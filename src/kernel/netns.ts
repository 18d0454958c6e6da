/**
 * Network namespaces as the daemon names them. BPF programs report a namespace by its inode
 * number (ns.inum, the inode of /proc/<pid>/ns/net); the daemon's own namespace is "global", any
 * other is "ns:<inum>". Sysctls of another namespace are read and written from inside it: the
 * main thread joins the namespace with setns(), does the synchronous /proc/sys I/O (Deno runs
 * sync file operations on the calling thread) and returns at once, never across an await.
 */
import { cstr } from "../libbpf/cstr.ts";
import { errno, lib } from "../libbpf/runtime.ts";

const CLONE_NEWNET = 0x40000000;
export const GLOBAL_NETNS = "global";
/** An admin override whose namespace could not be told: it applies in every namespace. */
export const ANY_NETNS = "any";

let ownInum: bigint | null = null;

export function netnsInumOf(path: string): bigint {
  return BigInt(Deno.statSync(path).ino ?? 0);
}

export function ownNetnsInum(): bigint {
  ownInum ??= netnsInumOf("/proc/self/ns/net");
  return ownInum;
}

/** The journal/log key of a namespace inode; 0 (unknown) counts as global. */
export function netnsKey(inum: bigint): string {
  return inum === 0n || inum === ownNetnsInum() ? GLOBAL_NETNS : `ns:${inum}`;
}

export function parseNetnsKey(key: string): bigint | null {
  if (key === GLOBAL_NETNS || key === ANY_NETNS) return null;
  const m = /^ns:(\d+)$/.exec(key);
  if (!m) throw new Error(`not a network namespace key: ${key}`);
  return BigInt(m[1]);
}

/** "global ns" or "non-global ns (inode N)", the way log lines name a namespace. */
export function describeNetns(key: string): string {
  if (key === ANY_NETNS) return "every ns (the writer's could not be determined)";
  return key === GLOBAL_NETNS ? "global ns" : `non-global ns (inode ${key.slice(3)})`;
}

const pathCache = new Map<bigint, string>();

function matches(path: string, inum: bigint): boolean {
  try {
    return netnsInumOf(path) === inum;
  } catch {
    return false;
  }
}

/** Lookups that miss rescan /proc at most this often (named namespaces are always re-read). */
const PROC_RESCAN_MS = 1000;
let procScan: { at: number; paths: Map<bigint, string> } | null = null;

function addPath(paths: Map<bigint, string>, p: string): void {
  try {
    const inum = netnsInumOf(p);
    if (!paths.has(inum)) paths.set(inum, p);
  } catch {
    // gone meanwhile
  }
}

function namedNetnsPaths(): Map<bigint, string> {
  const paths = new Map<bigint, string>();
  for (const dir of ["/run/netns", "/var/run/netns"]) {
    try {
      for (const e of Deno.readDirSync(dir)) addPath(paths, `${dir}/${e.name}`);
    } catch {
      // no named namespaces
    }
  }
  return paths;
}

/** inum -> /proc/<pid>/ns/net of some process in it, for every namespace in one pass. */
function procNetnsPaths(): Map<bigint, string> {
  const paths = new Map<bigint, string>();
  for (const e of Deno.readDirSync("/proc")) {
    if (/^\d+$/.test(e.name)) addPath(paths, `/proc/${e.name}/ns/net`);
  }
  return paths;
}

/**
 * A path that opens the namespace: a named one (/run/netns) first, else any process in it.
 * Null when no process holds it any more (the namespace is gone). One pass over /proc answers
 * every lookup for PROC_RESCAN_MS, so a thousand gone or unnamed namespaces cost one scan, not a
 * thousand, and a request never waits for more than one.
 */
export function findNetnsPath(inum: bigint): string | null {
  const cached = pathCache.get(inum);
  if (cached && matches(cached, inum)) return cached;
  pathCache.delete(inum);
  let found = namedNetnsPaths().get(inum);
  if (!found) {
    const now = performance.now();
    if (!procScan || now - procScan.at > PROC_RESCAN_MS) {
      procScan = { at: now, paths: procNetnsPaths() };
    }
    found = procScan.paths.get(inum);
  }
  if (found && matches(found, inum)) {
    pathCache.set(inum, found);
    return found;
  }
  return null;
}

export class NetnsGoneError extends Error {
  constructor(readonly key: string) {
    super(`network namespace ${key} no longer exists`);
    this.name = "NetnsGoneError";
  }
}

function returnHome(self: number): void {
  if (lib().libc.setns(self, CLONE_NEWNET) !== 0) {
    // Staying in the wrong namespace would misdirect every later write: stop hard.
    throw new Error(`cannot return to bpfpilot's network namespace (errno ${errno()})`);
  }
}

/** Runs `fn` (synchronous!) inside the namespace `key`; the global one runs it directly. */
export function inNetns<T>(key: string, fn: () => T): T {
  const inum = parseNetnsKey(key);
  if (inum === null || inum === ownNetnsInum()) return fn();
  const path = findNetnsPath(inum);
  if (!path) throw new NetnsGoneError(key);
  const { libc } = lib();
  const self = libc.open(cstr("/proc/self/ns/net"), 0o2000000 /* O_CLOEXEC */);
  const target = libc.open(cstr(path), 0o2000000);
  if (self < 0 || target < 0) {
    if (self >= 0) libc.close(self);
    if (target >= 0) libc.close(target);
    throw new NetnsGoneError(key);
  }
  try {
    if (libc.setns(target, CLONE_NEWNET) !== 0) {
      throw new Error(`cannot enter network namespace ${key} (errno ${errno()})`);
    }
    let result: T;
    try {
      result = fn();
    } catch (e) {
      returnHome(self);
      throw e;
    }
    returnHome(self);
    return result;
  } finally {
    libc.close(self);
    libc.close(target);
  }
}
