/**
 * AF_UNIX sockets through libc (Deno's own unix sockets expose no descriptor, so neither
 * datagrams without --unstable-net nor SO_PEERCRED): the socket helpers the journal sender and
 * the control client share (on src/kernel/libc.ts). FFI works the same under `deno run` and
 * `deno compile`.
 * Layouts are LP64 Linux (x86-64 and aarch64); openLibc() is null elsewhere.
 */
import { errnoOf, type Libc, openLibc as openSharedLibc } from "./libc.ts";

export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_NOSIGNAL = 0x4000;
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;
export const SO_PEERCRED = 17;
export const POLLIN = 1;
export const POLLOUT = 4;

export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EAGAIN: 11,
  EACCES: 13,
  ENOTDIR: 20,
  EPIPE: 32,
  EMSGSIZE: 90,
  ECONNRESET: 104,
  ENOBUFS: 105,
  ECONNREFUSED: 111,
} as const;

/** sizeof(sockaddr_un.sun_path): the path and its NUL must fit. */
export const SUN_PATH_MAX = 108;

export type { Libc };
export { errnoOf };

/** glibc (src/kernel/libc.ts) where the socket layouts below hold (LP64 Linux), else null. */
export function openLibc(): Libc | null {
  if (Deno.build.os !== "linux" || !["x86_64", "aarch64"].includes(Deno.build.arch)) return null;
  return openSharedLibc();
}

export function describeErrno(libc: Libc, errno: number): string {
  const p = libc.strerror(errno);
  return p ? Deno.UnsafePointerView.getCString(p) : `error ${errno}`;
}

const encoder = new TextEncoder();

/** struct sockaddr_un for a path, or null when the path does not fit. */
export function unixAddress(path: string): Uint8Array | null {
  const bytes = encoder.encode(path);
  if (bytes.length === 0 || bytes.length >= SUN_PATH_MAX || bytes.includes(0)) return null;
  const addr = new Uint8Array(2 + bytes.length + 1);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(bytes, 2);
  return addr;
}

export function pointerOf(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** CMSG_SPACE(sizeof(int)) on LP64: a 16-byte cmsghdr and the fd, padded to 8. */
export const FD_CMSG_SPACE = 24;

/**
 * struct msghdr: name, one iovec (or none) and a control buffer.
 * The caller keeps every buffer alive across the call.
 */
export function msgHeader(
  name: Uint8Array | null,
  iov: Uint8Array | null,
  control: Uint8Array | null,
): { header: Uint8Array; keep: Uint8Array[] } {
  const header = new Uint8Array(56);
  const v = new DataView(header.buffer);
  const keep: Uint8Array[] = [];
  if (name) {
    v.setBigUint64(0, pointerOf(name), true);
    v.setUint32(8, name.length, true);
  }
  if (iov) {
    const vec = new Uint8Array(16);
    const vv = new DataView(vec.buffer);
    vv.setBigUint64(0, pointerOf(iov), true);
    vv.setBigUint64(8, BigInt(iov.length), true);
    keep.push(vec);
    v.setBigUint64(16, pointerOf(vec), true);
    v.setBigUint64(24, 1n, true);
  }
  if (control) {
    v.setBigUint64(32, pointerOf(control), true);
    v.setBigUint64(40, BigInt(control.length), true);
  }
  return { header, keep };
}

/** struct ucred of the process at the other end of a connected unix socket. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** getsockopt(SO_PEERCRED); -errno on failure. */
export function peerCredentials(libc: Libc, fd: number): PeerCredentials | number {
  const cred = new Uint8Array(12);
  const len = new Uint32Array([cred.length]);
  if (libc.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, new Uint8Array(len.buffer)) < 0) {
    return -errnoOf(libc);
  }
  const v = new DataView(cred.buffer);
  return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
}

/**
 * Waits (off the event loop) until `fd` is ready for `events` or `ms` pass: true when ready
 * (or in error/hang-up, which the next read or write reports), false on timeout.
 */
export async function pollFd(libc: Libc, fd: number, events: number, ms: number) {
  const pfd = new Uint8Array(8);
  const v = new DataView(pfd.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, events, true);
  const n = await libc.poll(pfd, 1n, Math.max(0, Math.ceil(ms)));
  return n > 0;
}
