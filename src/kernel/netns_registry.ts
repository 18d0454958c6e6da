/**
 * The network namespaces the daemon knows: inode number -> a path that opens it, its name where it
 * has one, and its cookie once learnt. Bounded (the least recently used unnamed entries go first),
 * no fd kept per namespace. Lookups never scan: a full scan runs once at start (synchronously,
 * before anything is served) and later in the background in small slices, at most every
 * `rescanGapMs`, when an unknown namespace shows up in an event, and on the periodic look
 * (refresh) when a named directory changed or at least every `fullScanGapMs`. That scan is also
 * how destroyed namespaces are noticed (and forgotten, with the caller told). Between full scans
 * the periodic look stats only the named directories and the known namespaces' /proc paths.
 */

import { statx, STATX_INO, STATX_MTIME, STATX_SIZE, STATX_TYPE } from "./statx.ts";

export interface NsStat {
  dev: number;
  ino: bigint;
}

/** The file system as the registry reads it (a fake in unit tests). */
export interface NetnsFs {
  /** Entry names of a directory; [] when it does not exist. */
  list(dir: string): string[];
  /** dev/inode of what `path` opens; `follow` false refuses a symlink as the last component. */
  stat(path: string, follow: boolean): NsStat | null;
  /**
   * A directory's identity and modification time (any value that changes when an entry is added
   * or removed), null when it does not exist. Without it every periodic look is a full scan.
   */
  stamp?(dir: string): string | null;
}

export interface NetnsEntry {
  inum: bigint;
  path: string;
  /** The name under /run/netns (or a runtime's directory), null for namespaces without one. */
  name: string | null;
  /** SO_NETNS_COOKIE, learnt the first time the namespace is entered; undefined before. */
  cookie?: bigint | null;
}

/**
 * Where named namespaces live, most trusted first (the first name found for an inode wins): ip
 * netns, docker, rootless podman (/run/user/<uid>/netns, owned by that user: a symlink there is
 * not followed, so a user can neither rename root's namespaces nor point anywhere else).
 */
const NAMED_DIRS = ["/run/netns", "/var/run/netns", "/run/docker/netns"];
const USER_RUN = "/run/user";
/** /proc entries stat'ed per slice of a background scan (~1 ms), between which the loop runs. */
const SLICE = 256;
/** Least time between two synchronous looks through the named directories (pathWentStale). */
const NAMED_LOOKUP_GAP_MS = 250;
/**
 * Looks within that gap that a caller who must tell a namespace's identity now may take
 * (pathWentStale `now`): one per namespace and at most this many between two full scans.
 */
const HURRIED_LOOKUPS = 16;

const isPid = (name: string) => /^\d+$/.test(name);

/** What a full scan saw besides the namespaces: what the periodic look compares against. */
interface ScanRecord {
  /** Named directories (and the user runtime directory) -> their stamp. */
  stamps: Map<string, string | null>;
  /**
   * A name that was not (yet) a namespace (ip netns add creates the file, then mounts it), or a
   * file system without stamps: the next periodic look scans fully again.
   */
  unsettled: boolean;
}

export interface NetnsRegistryOptions {
  fs?: NetnsFs;
  /** Most entries kept; beyond it the least recently used unnamed ones are dropped. */
  cap?: number;
  /** Least time between two background scans. */
  rescanGapMs?: number;
  /** Most time between two full scans on the periodic look (refresh). */
  fullScanGapMs?: number;
  now?: () => number;
  /** The daemon's own namespace, never registered (it is "global"). */
  ownInum?: bigint;
  debug?: (msg: string) => void;
  /** A namespace is gone (noticed by a scan, or its inode came back with another cookie). */
  onDestroyed?: (inum: bigint) => void;
}

export class NetnsRegistry {
  readonly #fs: NetnsFs;
  readonly #cap: number;
  readonly #gapMs: number;
  readonly #fullGapMs: number;
  readonly #now: () => number;
  readonly #opts: NetnsRegistryOptions;
  /** Insertion order = recency (touch() re-inserts). */
  readonly #known = new Map<bigint, NetnsEntry>();
  #nsDev: number | null = null;
  #lastScanAt = -Infinity;
  /** The last full scan's record; null before one, or when the next look must be full. */
  #record: ScanRecord | null = null;
  #lastNamedAt = -Infinity;
  /** Namespaces whose path was looked for within the gap since the last full scan. */
  #hurried = new Set<bigint>();
  #scanning: Promise<void> | null = null;
  #wanted = false;
  scans = 0;
  /** Periodic looks that did not need a full scan. */
  lightLooks = 0;

  constructor(opts: NetnsRegistryOptions = {}) {
    this.#opts = opts;
    this.#fs = opts.fs ?? realFs;
    this.#cap = opts.cap ?? 8192;
    this.#gapMs = opts.rescanGapMs ?? 2000;
    this.#fullGapMs = opts.fullScanGapMs ?? 60_000;
    this.#now = opts.now ?? (() => performance.now());
  }

  get size(): number {
    return this.#known.size;
  }

  /** The nsfs device: a file elsewhere with a matching inode number is not a namespace. */
  #dev(): number | null {
    this.#nsDev ??= this.#fs.stat("/proc/self/ns/net", true)?.dev ?? null;
    return this.#nsDev;
  }

  #inumAt(path: string, follow: boolean): bigint | null {
    const st = this.#fs.stat(path, follow);
    return st && st.dev === this.#dev() ? st.ino : null;
  }

  /** Every inode -> its best path, in one pass (names first); the stamps go into `rec`. */
  *#sources(rec: ScanRecord): Generator<[string, string | null, boolean]> {
    yield* this.#namedSources(rec);
    for (const pid of this.#fs.list("/proc")) {
      if (isPid(pid)) yield [`/proc/${pid}/ns/net`, null, true];
    }
  }

  /** Each directory is stamped before it is listed: a change after the listing shows next time. */
  *#namedSources(rec?: ScanRecord): Generator<[string, string | null, boolean]> {
    const list = (dir: string) => {
      if (rec) rec.stamps.set(dir, this.#fs.stamp?.(dir) ?? null);
      return this.#fs.list(dir);
    };
    for (const dir of NAMED_DIRS) {
      for (const n of list(dir)) yield [`${dir}/${n}`, n, false];
    }
    for (const uid of list(USER_RUN)) {
      if (!isPid(uid)) continue;
      for (const n of list(`${USER_RUN}/${uid}/netns`)) {
        yield [`${USER_RUN}/${uid}/netns/${n}`, n, false];
      }
    }
  }

  #collect(
    found: Map<bigint, { path: string; name: string | null }>,
    src: [string, string | null, boolean],
    rec?: ScanRecord,
  ) {
    const [path, name, follow] = src;
    const inum = this.#inumAt(path, follow);
    if (inum === null && name !== null && rec) rec.unsettled = true;
    if (inum === null || inum === this.#opts.ownInum || found.has(inum)) return;
    found.set(inum, { path, name });
  }

  #newRecord(): ScanRecord {
    return { stamps: new Map(), unsettled: this.#fs.stamp === undefined };
  }

  /** The synchronous full scan at start (before the daemon serves anything). */
  discover(): void {
    const found = new Map<bigint, { path: string; name: string | null }>();
    const rec = this.#newRecord();
    for (const src of this.#sources(rec)) this.#collect(found, src, rec);
    this.#merge(found, rec);
  }

  /**
   * The periodic look (the daemon's tick, every few seconds). A full scan when one is due
   * (fullScanGapMs), when a named directory changed, or when a known namespace's /proc path no
   * longer opens it (its process exited or moved: the namespace may be gone); else nothing more.
   * Listing /proc alone costs ~250 us, each stat ~5: what waits for the next full scan (or an event
   * from it: observe) is a new namespace that only a process holds, and one destroyed while the
   * process it was found through lives on.
   */
  refresh(): void {
    const rec = this.#record;
    if (this.#scanning || this.#wanted) return;
    if (
      !rec || this.#now() - this.#lastScanAt >= this.#fullGapMs || this.#namedChanged(rec) ||
      this.#procPathStale()
    ) {
      this.requestRescan();
      return;
    }
    this.lightLooks++;
  }

  #namedChanged(rec: ScanRecord): boolean {
    for (const [dir, stamp] of rec.stamps) if (this.#fs.stamp?.(dir) !== stamp) return true;
    return false;
  }

  /** A known namespace's path is a process's that no longer opens it (named ones: their stamps). */
  #procPathStale(): boolean {
    for (const e of this.#known.values()) {
      if (e.name === null && this.#inumAt(e.path, true) !== e.inum) return true;
    }
    return false;
  }

  /** A background scan, unless one ran less than rescanGapMs ago (then one is due later). */
  requestRescan(): void {
    this.#wanted = true;
    if (this.#scanning || this.#now() - this.#lastScanAt < this.#gapMs) return;
    this.#wanted = false;
    this.#scanning = this.#scanSliced().finally(() => this.#scanning = null);
  }

  /** Tick: a scan that was asked for during the gap runs now. Returns the scan, if one runs. */
  tick(): Promise<void> | null {
    if (this.#wanted) this.requestRescan();
    return this.#scanning;
  }

  async #scanSliced(): Promise<void> {
    const found = new Map<bigint, { path: string; name: string | null }>();
    const rec = this.#newRecord();
    let n = 0;
    for (const src of this.#sources(rec)) {
      this.#collect(found, src, rec);
      if (++n % SLICE === 0) await new Promise((r) => setTimeout(r, 0));
    }
    this.#merge(found, rec);
  }

  #merge(found: Map<bigint, { path: string; name: string | null }>, rec: ScanRecord): void {
    this.#lastScanAt = this.#now();
    this.#record = rec.unsettled ? null : rec;
    this.scans++;
    this.#hurried.clear();
    for (const [inum, e] of [...this.#known]) {
      if (!found.has(inum)) this.#destroyed(e);
    }
    for (const [inum, f] of found) {
      const e = this.#known.get(inum);
      if (e) {
        e.path = f.path;
        e.name = f.name;
      } else this.#add({ inum, ...f });
    }
  }

  #add(e: NetnsEntry): void {
    this.#known.set(e.inum, e);
    this.#opts.debug?.(`netns created (${label(e)})`);
    if (this.#known.size <= this.#cap) return;
    // Over the cap: drop the least recently used unnamed one (it is found again if it speaks).
    for (const [inum, old] of this.#known) {
      if (old.name === null && inum !== e.inum) {
        this.#known.delete(inum);
        return;
      }
    }
  }

  #destroyed(e: NetnsEntry): void {
    this.#known.delete(e.inum);
    this.#opts.debug?.(`netns destroyed (${label(e)})`);
    this.#opts.onDestroyed?.(e.inum);
  }

  /**
   * An event came from namespace `inum`, caused by `pid`: an unknown namespace is found through
   * the pid (one stat) or, failing that, by a background scan.
   */
  observe(inum: bigint, pid: number): void {
    if (inum === 0n || inum === this.#opts.ownInum) return;
    const e = this.#known.get(inum);
    if (e) {
      this.#touch(e);
      return;
    }
    const path = `/proc/${pid}/ns/net`;
    if (pid > 0 && this.#inumAt(path, true) === inum) this.#add({ inum, path, name: null });
    // The process moved on before its event was handled (a short-lived one usually has): its
    // namespace may be named; otherwise the event would be dropped until a background rescan.
    else {
      this.#lookNamed();
      if (!this.#known.has(inum)) this.requestRescan();
    }
  }

  #touch(e: NetnsEntry): void {
    this.#known.delete(e.inum);
    this.#known.set(e.inum, e);
  }

  knows(inum: bigint): boolean {
    return this.#known.has(inum);
  }

  entry(inum: bigint): NetnsEntry | undefined {
    return this.#known.get(inum);
  }

  /** The path last found for `inum` (no check: inNetns checks the handle it opens). */
  cachedPathOf(inum: bigint): string | null {
    const e = this.#known.get(inum);
    if (!e) this.requestRescan();
    return e?.path ?? null;
  }

  /**
   * The path no longer opens `inum`: the process whose /proc path led to it moved to another
   * namespace or exited (a short-lived one usually has by the time its event is handled). The
   * named directories are looked through at once (a listing and a stat per name, at most every
   * NAMED_LOOKUP_GAP_MS): every namespace found there is registered with its name and lasting
   * path (so the next new ones are known before their first event). Returns inum's new path, or
   * null: then a background rescan (which also reads /proc) looks.
   *
   * `now`: the caller must tell which namespace has the inode now (netnsCookieOf's verification):
   * within the gap it looks once all the same, once per namespace and at most HURRIED_LOOKUPS
   * times between two full scans (a flood of stale paths costs no more than that).
   */
  pathWentStale(inum: bigint, opts: { now?: boolean } = {}): string | null {
    const stale = this.#known.get(inum)?.path;
    if (stale !== undefined && this.#lookNamed(inum, opts.now === true)) {
      const path = this.#known.get(inum)?.path;
      if (path !== undefined && path !== stale) return path;
    }
    this.requestRescan();
    return null;
  }

  /** Whether a look within the gap is allowed for `inum` now (see pathWentStale); counted. */
  #mayHurry(inum: bigint): boolean {
    if (this.#hurried.has(inum) || this.#hurried.size >= HURRIED_LOOKUPS) return false;
    this.#hurried.add(inum);
    return true;
  }

  /**
   * Registers every namespace of the named directories (new ones, and names for known ones); at
   * most every NAMED_LOOKUP_GAP_MS, so a flood of events from unnamed namespaces costs little
   * (`hurry`: within it too, as pathWentStale allows). `stale`'s entry takes the path found even
   * when it has a name: its own name may be a dead namespace's whose inode a new one took. False
   * when it did not look.
   */
  #lookNamed(stale?: bigint, hurry = false): boolean {
    const early = this.#now() - this.#lastNamedAt < NAMED_LOOKUP_GAP_MS;
    if (early && !(hurry && stale !== undefined && this.#mayHurry(stale))) return false;
    this.#lastNamedAt = this.#now();
    const found = new Map<bigint, { path: string; name: string | null }>();
    for (const src of this.#namedSources()) this.#collect(found, src);
    for (const [i, f] of found) {
      const e = this.#known.get(i);
      if (!e) this.#add({ inum: i, ...f });
      else if (e.name === null || i === stale) Object.assign(e, f);
    }
    return true;
  }

  nameOf(inum: bigint): string | null {
    return this.#known.get(inum)?.name ?? null;
  }

  /** The namespace known by that name (`query --netns <name>`), or null; a walk of the known. */
  inumNamed(name: string): bigint | null {
    for (const e of this.#known.values()) if (e.name === name) return e.inum;
    return null;
  }

  /**
   * Checks the cookie of the namespace just entered through inum's path against the one learnt
   * before. A different cookie means the inode number was reused by a new namespace: the old one
   * is reported destroyed (its records must go) and the new one takes the entry. Returns false
   * then, so nothing meant for the old one is written into the new one.
   */
  confirmCookie(inum: bigint, cookie: bigint | null): boolean {
    const e = this.#known.get(inum);
    if (!e || cookie === null) return true; // no cookie on this kernel: the inode is all we have
    if (e.cookie === undefined || e.cookie === null) {
      e.cookie = cookie;
      return true;
    }
    if (e.cookie === cookie) return true;
    this.#destroyed(e);
    this.#add({ inum, path: e.path, name: e.name, cookie });
    return false;
  }
}

function label(e: NetnsEntry): string {
  return e.name === null ? `inode ${e.inum}` : `'${e.name}', inode ${e.inum}`;
}

const realFs: NetnsFs = {
  list(dir) {
    try {
      return [...Deno.readDirSync(dir)].map((e) => e.name);
    } catch {
      return [];
    }
  },
  stat(path, follow) {
    // statx's dev is encoded as Deno's stat gives it: the two may answer looks of one scan.
    const st = statx(path, follow, STATX_TYPE | STATX_INO);
    if (st !== undefined) return st && !st.isSymlink ? { dev: st.dev, ino: st.ino } : null;
    try {
      const st = follow ? Deno.statSync(path) : Deno.lstatSync(path);
      if (st.isSymlink) return null;
      return { dev: st.dev, ino: BigInt(st.ino ?? 0) };
    } catch {
      return null;
    }
  },
  stamp(dir) {
    // The size too: a tmpfs directory's grows and shrinks with its entries, within one mtime tick.
    const st = statx(dir, true, STATX_INO | STATX_MTIME | STATX_SIZE);
    if (st !== undefined) return st && `${st.dev}:${st.ino}:${st.mtimeNs}:${st.size}`;
    try {
      const st = Deno.statSync(dir);
      return `${st.dev}:${st.ino}:${st.mtime?.getTime()}:${st.size}`;
    } catch {
      return null;
    }
  },
};
