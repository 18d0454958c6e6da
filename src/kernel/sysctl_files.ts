/**
 * /proc/sys files kept open, by namespace key and sysctl (bounded; when full, one picked at
 * random goes: see #evict). A sysctl file opened inside a network namespace reads and writes that namespace's value
 * from anywhere: no setns, and no path lookup (which walks a dcache chain holding every
 * namespace's same-named entry, so it costs more with every namespace on the host).
 *
 * Safety: a kept file is tied by the kernel to the namespace it was opened in, never to an inode
 * number: once that namespace is gone its reads and writes fail (ENOENT) and it is dropped, so
 * nothing meant for a dead namespace can reach a new one with its inode (the kernel unregisters
 * a dying namespace's sysctl tables before it frees its inode number). That alone protects
 * kernels without netns cookies (5.10); checked on 5.10, 6.1, 6.12 and 7.3 with the kernel
 * matrix's scripts/km/guest-stale-sysctl and here by test/integration/sysctl_files_test.ts.
 * Files are opened only right after the namespace's cookie was checked (inNetns verifyCookie)
 * and carry that cookie; one is used only while the registry still holds the same cookie for the
 * key (`cookieNow`).
 * Each use first checks that the descriptor is still the file opened (fstat: device and inode,
 * ~1 µs): a number some other code closed and an open reused is forgotten, not used.
 * Any failure drops the file and the caller goes the slow way (a checked visit), which says
 * what went wrong.
 */
import { cstr } from "../libbpf/cstr.ts";
import { type Libc, openLibc } from "./libc.ts";
import { sysctlPath } from "./sysctl.ts";
import { forgetNetnsKeys } from "./netns_keyed.ts";

const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
/**
 * How many files a SysctlFiles keeps open by default: tcp_buffer alone keeps 2-3 per namespace it
 * sees events from, so this holds ~1,400-2,000 busy namespaces. Each miss is a checked visit
 * whose opens walk a dcache chain as long as the host's namespaces are many: at 1,000 namespaces
 * under traffic with 1,024 kept, a tcp_buffer event's read was 350-440 µs (most missed), with
 * 4,096 95-240 µs (the first visit of each namespace still opens). 256 held 85 (at 100 namespaces
 * nearly every event missed). Deno raises the soft fd limit to the hard one (systemd's default:
 * 524288); under a lower limit the daemon keeps half of it at most (daemonKeptFiles), so kept
 * files never starve its sockets, maps and namespace handles.
 */
export const SYSCTL_FILES_MAX = 4096;

/** This process's soft open-files limit (1024, the usual one, when /proc says nothing). */
export function openFilesLimit(): number {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(Deno.readTextFileSync("/proc/self/limits"));
    if (line) return Number(line[1]); // "unlimited" does not match: the usual limit is safe
  } catch {
    // no /proc: the usual soft limit
  }
  return 1024;
}

/** The daemon's bound: SYSCTL_FILES_MAX within half the open-files limit. */
export function daemonKeptFiles(limit = openFilesLimit()): number {
  return keptFilesWithin(SYSCTL_FILES_MAX, limit, Math.ceil(limit / 2));
}

/** Files to keep: at most `wanted`, leaving `reserved` of the open-files `limit` to the rest. */
export function keptFilesWithin(wanted: number, limit: number, reserved: number): number {
  return Math.max(1, Math.min(wanted, limit - reserved));
}
/** Longer than any integer sysctl's text (a 256-CPU mask is ~72 bytes). */
const READ_BYTES = 4096;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

interface Kept {
  fd: number;
  /** The registry's cookie of the namespace when the file was opened (checked then). */
  cookie: bigint | null | undefined;
  /** The open file's device and inode (fstat): what the fd must still be at each use. */
  dev: bigint;
  ino: bigint;
}

export interface SysctlFilesOptions {
  /** How many files stay open at most (default SYSCTL_FILES_MAX). */
  max?: number;
  /** The cookie the registry holds now for a namespace key (null: global or none). */
  cookieNow: (netns: string) => bigint | null | undefined;
  /** glibc (tests pass a fake); null: nothing is kept, every access goes the slow way. */
  libc?: Pick<Libc, "open" | "close" | "pread" | "pwrite" | "fstat"> | null;
  /**
   * A kept file's descriptor no longer is that file (something else closed it and the number was
   * reused): it is forgotten, not closed (it is another's now), and the access goes the slow way.
   */
  onStolen?: (netns: string, sysctl: string) => void;
  /** In [0, 1): which file goes when full (default Math.random). */
  random?: () => number;
}

export class SysctlFiles {
  readonly #kept = new Map<string, Kept>();
  readonly #max: number;
  readonly #libc: Pick<Libc, "open" | "close" | "pread" | "pwrite" | "fstat"> | null;
  readonly #buf = new Uint8Array(READ_BYTES);
  /** struct stat (144 bytes on x86_64, 128 on aarch64): st_dev, then st_ino, both 64-bit. */
  readonly #stat = new BigUint64Array(32);

  constructor(private readonly opts: SysctlFilesOptions) {
    this.#max = Math.max(1, opts.max ?? SYSCTL_FILES_MAX);
    this.#libc = opts.libc === undefined ? openLibc() : opts.libc;
  }

  get size(): number {
    return this.#kept.size;
  }

  /**
   * Call from inside namespace `netns` (inNetns, cookie just checked): opens `sysctl`'s file
   * read-write and keeps it. Read-only or absent sysctls are not kept. True when kept.
   */
  keepHere(netns: string, sysctl: string): boolean {
    const libc = this.#libc;
    if (!libc) return false;
    const key = keyOf(netns, sysctl);
    this.#drop(key);
    const cookie = this.opts.cookieNow(netns);
    const fd = libc.open(cstr(sysctlPath(sysctl)), O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    const id = this.#identity(fd);
    if (!id) {
      libc.close(fd);
      return false;
    }
    this.#kept.set(key, { fd, cookie, ...id });
    while (this.#kept.size > this.#max) this.#evict();
    return true;
  }

  /**
   * Drops a file picked at random. Least-recently-used would keep none of a working set larger
   * than the bound when it is visited in turn (traffic rotating over namespaces): every access
   * would miss and pay a visit. A random pick keeps part of it (150 files visited in turn
   * through 100: 40 % hit), and a file in use often is soon kept again.
   */
  #evict(): void {
    const skip = Math.floor((this.opts.random ?? Math.random)() * this.#kept.size);
    let i = 0;
    for (const key of this.#kept.keys()) {
      if (i++ === skip) return this.#drop(key);
    }
  }

  /** The sysctl's text through a kept file; null when none is kept or it failed (dropped). */
  read(netns: string, sysctl: string): string | null {
    const key = keyOf(netns, sysctl);
    const k = this.#usable(key, netns);
    if (!k) return null;
    const n = Number(this.#libc!.pread(k.fd, this.#buf, BigInt(READ_BYTES), 0n));
    if (n < 0 || n >= READ_BYTES) {
      this.#drop(key); // gone (ENOENT) or odd: the slow way tells
      return null;
    }
    return decoder.decode(this.#buf.subarray(0, n));
  }

  /**
   * Writes `text` (one write, as the kernel wants) through a kept file. False when none is kept
   * or the write failed (dropped): nothing was taken, or the caller's checked visit writes the
   * same again and reports the kernel's answer.
   */
  write(netns: string, sysctl: string, text: string): boolean {
    const key = keyOf(netns, sysctl);
    const k = this.#usable(key, netns);
    if (!k) return false;
    const bytes = encoder.encode(text);
    const n = Number(this.#libc!.pwrite(k.fd, bytes, BigInt(bytes.length), 0n));
    if (n === bytes.length) return true;
    this.#drop(key);
    return false;
  }

  /** Closes every file of the namespaces `gone` (gone, or their inodes are others' now), one pass. */
  forgetNetns(gone: ReadonlySet<string>): void {
    forgetNetnsKeys(this.#kept, gone, (key) => this.#drop(key));
  }

  closeAll(): void {
    for (const key of [...this.#kept.keys()]) this.#drop(key);
  }

  /** The kept file of `key`, made most recently used; dropped when its cookie is not current. */
  #usable(key: string, netns: string): Kept | null {
    const k = this.#kept.get(key);
    if (!k) return null;
    if (this.opts.cookieNow(netns) !== k.cookie) {
      this.#drop(key);
      return null;
    }
    // A descriptor closed behind our back (native code) and its number reused by another open
    // would read and write that file: another namespace's value, read back as a success.
    const id = this.#identity(k.fd);
    if (!id || id.dev !== k.dev || id.ino !== k.ino) {
      this.#kept.delete(key);
      this.opts.onStolen?.(netns, key.slice(key.indexOf("\0") + 1));
      return null;
    }
    this.#kept.delete(key);
    this.#kept.set(key, k);
    return k;
  }

  #identity(fd: number): { dev: bigint; ino: bigint } | null {
    if (this.#libc!.fstat(fd, new Uint8Array(this.#stat.buffer)) !== 0) return null;
    return { dev: this.#stat[0], ino: this.#stat[1] };
  }

  #drop(key: string): void {
    const k = this.#kept.get(key);
    if (!k) return;
    this.#kept.delete(key);
    this.#libc?.close(k.fd);
  }
}

function keyOf(netns: string, sysctl: string): string {
  return `${netns}\0${sysctl}`;
}
