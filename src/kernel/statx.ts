/**
 * statx(2) through glibc for looks the daemon repeats (the namespace scan's hundreds of stats every
 * few seconds): no Deno FileInfo built per call (~15 us each, ~5 through statx here), no exception
 * for a path that is not there. One look at a time: the result is read from a shared buffer.
 */
import { errnoOf, type Libc, openLibc } from "./libc.ts";

const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
export const STATX_TYPE = 0x1, STATX_MTIME = 0x40, STATX_INO = 0x100, STATX_SIZE = 0x200;
const S_IFMT = 0o170000, S_IFLNK = 0o120000;
const ENAMETOOLONG = 36;

const buf = new Uint8Array(256);
const view = new DataView(buf.buffer);
/** The path, NUL-terminated (PATH_MAX). */
const pathBuf = new Uint8Array(4097);
const encoder = new TextEncoder();

export interface StatxResult {
  /** st_dev as major << 20 | minor (the kernel's own dev_t: 12 and 20 bits). */
  dev: number;
  ino: bigint;
  isSymlink: boolean;
  size: number;
  /** Modification time in ns (0 unless STATX_MTIME was asked for). */
  mtimeNs: bigint;
}

let libc: Libc | null | undefined;

/**
 * The file at `path` (the last component not followed unless `follow`), null when it cannot be
 * looked at (missing, no permission), undefined where statx(2) is not available (no glibc 2.28):
 * the caller falls back to Deno's stat.
 */
export function statx(path: string, follow: boolean, mask: number): StatxResult | null | undefined {
  const r = statxOrErrno(path, follow, mask);
  return typeof r === "number" ? null : r;
}

/** As statx, but a failed look gives its errno (ENOENT and the rest told apart). */
export function statxOrErrno(
  path: string,
  follow: boolean,
  mask: number,
): StatxResult | number | undefined {
  libc ??= openLibc();
  if (!libc?.statx) return undefined;
  const { read, written } = encoder.encodeInto(path, pathBuf);
  if (read < path.length || written >= pathBuf.length) return ENAMETOOLONG;
  pathBuf[written] = 0;
  if (libc.statx(AT_FDCWD, pathBuf, follow ? 0 : AT_SYMLINK_NOFOLLOW, mask, buf) !== 0) {
    return errnoOf(libc);
  }
  return {
    dev: view.getUint32(136, true) * 0x100000 + view.getUint32(140, true),
    ino: view.getBigUint64(32, true),
    isSymlink: (view.getUint16(28, true) & S_IFMT) === S_IFLNK,
    size: Number(view.getBigUint64(40, true)),
    mtimeNs: mask & STATX_MTIME
      ? view.getBigInt64(112, true) * 1_000_000_000n + BigInt(view.getUint32(120, true))
      : 0n,
  };
}
