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
  /**
   * st_dev encoded as stat(2) gives it (makedev: Deno.statSync's `dev`, glibc's fstat), so a
   * device from here and one from a fallback to Deno's stat compare equal.
   */
  dev: number;
  ino: bigint;
  isSymlink: boolean;
  size: number;
  /** Modification time in ns (0 unless STATX_MTIME was asked for). */
  mtimeNs: bigint;
}

let libc: Libc | null | undefined;

/**
 * glibc's makedev (the kernel's new_encode_dev for stat(2)): minor's low 8 bits, major's 12, then
 * minor's other 12 (Linux's are 20 bits, its majors 12; glibc's 64-bit form puts more of a major
 * above bit 44). statx gives them apart. Arithmetic: bit operators would be 32-bit signed.
 */
export function makedev(major: number, minor: number): number {
  return (minor % 0x100) + (major % 0x1000) * 0x100 + Math.floor(minor / 0x100) * 0x100000 +
    Math.floor(major / 0x1000) * 2 ** 44;
}

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
    dev: makedev(view.getUint32(136, true), view.getUint32(140, true)),
    ino: view.getBigUint64(32, true),
    isSymlink: (view.getUint16(28, true) & S_IFMT) === S_IFLNK,
    size: Number(view.getBigUint64(40, true)),
    mtimeNs: mask & STATX_MTIME
      ? view.getBigInt64(112, true) * 1_000_000_000n + BigInt(view.getUint32(120, true))
      : 0n,
  };
}
