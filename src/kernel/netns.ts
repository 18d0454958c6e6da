/**
 * Network namespaces as the daemon names them. BPF programs report a namespace by its inode
 * number (ns.inum, the inode of /proc/<pid>/ns/net); the daemon's own namespace is "global", any
 * other is "ns:<inum>". Sysctls of another namespace are read and written from inside it: the
 * main thread joins the namespace with setns(), does the synchronous /proc/sys I/O (Deno runs
 * sync file operations on the calling thread) and returns at once, never across an await.
 *
 * Identity: the key stays the inode (what every BPF program can read, on every kernel we load
 * on), checked against the namespace's cookie (SO_NETNS_COOKIE, 5.14+) each time it is entered:
 * inode numbers are reused once a namespace dies, cookies are not, so inode + cookie tells a new
 * namespace from a dead one with its inode. Without cookies (5.10) only the inode is checked.
 */
import { cstr } from "../libbpf/cstr.ts";
import { errno, lib } from "../libbpf/runtime.ts";
import { AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, SOL_SOCKET } from "./libc_socket.ts";
import { NetnsRegistry } from "./netns_registry.ts";

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

let registry: NetnsRegistry | null = null;

/**
 * The process's namespace registry (kernel/netns_registry.ts). The daemon replaces it at start
 * with one that logs and tells it about destroyed namespaces; a command (rollback, query) gets a
 * plain one that scans once, on first use.
 */
export function netnsRegistry(): NetnsRegistry {
  if (!registry) {
    registry = new NetnsRegistry({ ownInum: ownNetnsInum() });
    registry.discover();
  }
  return registry;
}

export function useNetnsRegistry(r: NetnsRegistry): void {
  registry = r;
}

export class NetnsGoneError extends Error {
  constructor(readonly key: string) {
    super(
      `network namespace ${key} no longer exists (or no known path leads to it); nothing written`,
    );
    this.name = "NetnsGoneError";
  }
}

function returnHome(self: number): void {
  if (lib().libc.setns(self, CLONE_NEWNET) !== 0) {
    // Staying in the wrong namespace would misdirect every later write: stop hard.
    throw new Error(`cannot return to bpfpilot's network namespace (errno ${errno()})`);
  }
}

const O_CLOEXEC = 0o2000000;
const SO_NETNS_COOKIE = 71;

/**
 * The cookie of the namespace the calling thread is in (SO_NETNS_COOKIE, Linux 5.14+), null
 * without. Unlike the inode number, a cookie is never reused while the system runs: it tells a
 * namespace from a later one that got the same inode.
 */
export function currentNetnsCookie(): bigint | null {
  const { libc } = lib();
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return null;
  try {
    const value = new BigUint64Array(1);
    const len = new Uint32Array([8]);
    const r = libc.getsockopt(
      fd,
      SOL_SOCKET,
      SO_NETNS_COOKIE,
      new Uint8Array(value.buffer),
      new Uint8Array(len.buffer),
    );
    return r === 0 ? value[0] : null;
  } finally {
    libc.close(fd);
  }
}

const statBuf = new BigUint64Array(32); // struct stat is 144 (x86_64) or 128 (aarch64) bytes

/** The inode an open fd refers to, when it is on device `dev`; null otherwise. */
function fdInodeOn(fd: number, dev: bigint): bigint | null {
  if (lib().libc.fstat(fd, new Uint8Array(statBuf.buffer)) !== 0) return null;
  return statBuf[0] === dev ? statBuf[1] : null;
}

/** Our own namespace, open for the process's life (the way home after each setns). */
let home: { fd: number; dev: bigint } | null = null;

function homeNetns(): { fd: number; dev: bigint } {
  if (home) return home;
  const fd = lib().libc.open(cstr("/proc/self/ns/net"), O_CLOEXEC);
  if (fd < 0) throw new Error(`cannot open /proc/self/ns/net (errno ${errno()})`);
  lib().libc.fstat(fd, new Uint8Array(statBuf.buffer));
  home = { fd, dev: statBuf[0] };
  return home;
}

/** The namespace the calling code is inside (in an inNetns `fn`), null outside. */
let inside: bigint | null = null;

function enter<T>(inum: bigint, fn: () => T): T {
  inside = inum;
  try {
    return fn();
  } finally {
    inside = null;
  }
}

export interface InNetnsOptions {
  /**
   * Check the namespace's cookie once inside (a socket and a getsockopt, ~40 us): done before
   * every write, so nothing meant for a dead namespace lands in a new one with its inode.
   */
  verifyCookie?: boolean;
  /**
   * Told the cookie read inside when it is checked (also when it did not match: the registry has
   * then taken it for the new namespace at that inode).
   */
  onCookie?: (cookie: bigint | null) => void;
  /** A stale path is looked for again at once, within the registry's gap (pathWentStale `now`). */
  lookAgainNow?: boolean;
}

/**
 * Runs `fn` (synchronous!) inside the namespace `key`; the global one runs it directly. The
 * handle is checked right before use: the opened file must be that namespace's inode on nsfs
 * (a path can be reused between lookup and open), and with `verifyCookie`, its cookie must be the
 * one learnt before (an inode number is reused once a namespace dies); otherwise nothing runs.
 */
export function inNetns<T>(key: string, fn: () => T, opts: InNetnsOptions = {}): T {
  const inum = parseNetnsKey(key);
  if (inside !== null) {
    // Nested: the inner call would return home before the outer `fn` ends, and the rest of it
    // would read or write the daemon's own namespace. Only the same namespace may nest.
    if (inside === (inum ?? ownNetnsInum())) return fn();
    throw new Error(`internal error: entering network namespace ${key} from inside another`);
  }
  if (inum === null || inum === ownNetnsInum()) return enter(ownNetnsInum(), fn);
  const reg = netnsRegistry();
  const path = reg.cachedPathOf(inum);
  if (!path) throw new NetnsGoneError(key);
  const { libc } = lib();
  const self = homeNetns();
  let target = openNamespace(path, inum, self.dev);
  if (target < 0) {
    // The process whose path led there moved on: once more through the path found instead.
    const found = reg.pathWentStale(inum, { now: opts.lookAgainNow });
    if (found !== null) target = openNamespace(found, inum, self.dev);
    if (target < 0) throw new NetnsGoneError(key);
  }
  try {
    if (libc.setns(target, CLONE_NEWNET) !== 0) {
      throw new Error(`cannot enter network namespace ${key} (errno ${errno()})`);
    }
    let result: T;
    try {
      // A first visit learns the cookie on the way: the journal then records it without a
      // visit of its own, and the write that follows checks it.
      const check = opts.verifyCookie || reg.entry(inum)?.cookie === undefined;
      if (check) {
        const cookie = currentNetnsCookie();
        opts.onCookie?.(cookie);
        if (!reg.confirmCookie(inum, cookie)) throw new NetnsGoneError(key);
      }
      result = enter(inum, fn);
    } catch (e) {
      returnHome(self.fd);
      throw e;
    }
    returnHome(self.fd);
    return result;
  } finally {
    libc.close(target);
  }
}

/** An fd of `path` when it opens namespace `inum` (on nsfs device `dev`), else -1. */
function openNamespace(path: string, inum: bigint, dev: bigint): number {
  const fd = lib().libc.open(cstr(path), O_CLOEXEC);
  if (fd >= 0 && fdInodeOn(fd, dev) !== inum) {
    lib().libc.close(fd);
    return -1;
  }
  return fd;
}

/**
 * The cookie the registry holds for namespace `key` now, without entering it: null for the
 * global namespace, undefined when none is learnt (or the namespace is not known).
 */
export function heldNetnsCookie(key: string): bigint | null | undefined {
  const inum = parseNetnsKey(key);
  if (inum === null || inum === ownNetnsInum()) return null;
  return netnsRegistry().entry(inum)?.cookie;
}

/**
 * The cookie of namespace `key` as the registry knows it, learnt now (by entering it once) when
 * not yet known. Null for the global namespace, one no path leads to, or a kernel without
 * cookies (5.10): then only the inode identifies it.
 *
 * `verify`: the cookie of the namespace that has the inode now, read inside it (~40 us), so a
 * new namespace that took a dead one's inode between two registry scans (which keep the entry
 * and its cookie) is told from it. A stale path is looked for again at once (pathWentStale
 * `now`). Undefined when no path leads to it now: unknown, never the registry's older cookie,
 * which may be a dead namespace's (a failed setns throws). The registry looks again in the
 * background; callers decide nothing that needs the identity (no record, no write) and ask again
 * later.
 */
export function netnsCookieOf(key: string): bigint | null;
export function netnsCookieOf(key: string, opts: { verify?: boolean }): bigint | null | undefined;
export function netnsCookieOf(
  key: string,
  opts: { verify?: boolean } = {},
): bigint | null | undefined {
  const inum = parseNetnsKey(key);
  if (inum === null || inum === ownNetnsInum()) return null;
  const reg = netnsRegistry();
  if (opts.verify) {
    let seen: bigint | null | undefined;
    try {
      inNetns(key, () => {}, {
        verifyCookie: true,
        lookAgainNow: true,
        onCookie: (c) => seen = c,
      });
    } catch (e) {
      // Read inside but another than the registry's: the new namespace's, taken by the registry.
      if (seen !== undefined) return seen;
      if (e instanceof NetnsGoneError) return undefined;
      throw e;
    }
    return seen === undefined ? reg.entry(inum)?.cookie ?? null : seen;
  }
  if (reg.entry(inum)?.cookie === undefined) {
    try {
      inNetns(key, () => {});
    } catch (e) {
      if (!(e instanceof NetnsGoneError)) throw e;
    }
  }
  return reg.entry(inum)?.cookie ?? null;
}
