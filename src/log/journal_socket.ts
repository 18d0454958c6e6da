/**
 * Sending journal entries to journald's native socket through libc (Deno has no unix datagram
 * client without --unstable-net; FFI works the same under `deno run` and `deno compile`).
 *
 * One unconnected, non-blocking AF_UNIX SOCK_DGRAM socket; each entry is one sendto() to the
 * socket path, so a restarted journald (a new socket inode) is reached again without reconnecting,
 * and a journald that does not keep up costs an EAGAIN, never a stalled daemon. An entry larger
 * than a datagram may be (EMSGSIZE) goes as journald's own clients send it: written to a sealed
 * memfd, whose descriptor is passed with SCM_RIGHTS in an otherwise empty datagram.
 */

export const DEFAULT_JOURNAL_SOCKET = "/run/systemd/journal/socket";
/** Test switch: send to this socket instead (README "Environment variables"). */
export const JOURNAL_SOCKET_ENV = "BPFPILOT_JOURNAL_SOCKET";

/** Where entries go; null from send() means journald took the entry, else why it did not. */
export interface JournalSink {
  send(datagram: Uint8Array): string | null;
  close(): void;
}

export const AF_UNIX = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;
const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
const F_SEALS_ALL = 1 | 2 | 4 | 8; // SEAL, SHRINK, GROW, WRITE: journald maps sealed memfds
const EMSGSIZE = 90;
const ENOBUFS = 105;
/** sizeof(sockaddr_un.sun_path): the path and its NUL must fit. */
const SUN_PATH_MAX = 108;

const LIBC = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof LIBC>["symbols"];

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
 * struct msghdr (LP64: x86-64 and aarch64): name, one iovec (or none) and a control buffer.
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

/** A control buffer passing one descriptor (SCM_RIGHTS). */
function rightsControl(fd: number): Uint8Array {
  const control = new Uint8Array(FD_CMSG_SPACE);
  const v = new DataView(control.buffer);
  v.setBigUint64(0, 20n, true); // CMSG_LEN(sizeof(int))
  v.setInt32(8, SOL_SOCKET, true);
  v.setInt32(12, SCM_RIGHTS, true);
  v.setInt32(16, fd, true);
  return control;
}

function openLibc(): Libc | null {
  if (Deno.build.os !== "linux" || !["x86_64", "aarch64"].includes(Deno.build.arch)) return null;
  try {
    return Deno.dlopen("libc.so.6", LIBC).symbols;
  } catch {
    return null; // no glibc, or FFI not permitted
  }
}

function errnoOf(libc: Libc): number {
  const p = libc.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

function describe(libc: Libc, errno: number): string {
  const p = libc.strerror(errno);
  return p ? Deno.UnsafePointerView.getCString(p) : `error ${errno}`;
}

/**
 * A sink sending to the journal socket at `path`, or null where libc cannot be reached (the
 * caller logs to stderr instead). Whether journald listens is learnt per entry, from send().
 */
export function openJournalSocket(path = DEFAULT_JOURNAL_SOCKET): JournalSink | null {
  const libc = openLibc();
  if (!libc) return null;
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return null;
  const address = unixAddress(path);
  let open = true;

  const failure = (what: string) => {
    const errno = errnoOf(libc);
    return { errno, reason: `${what}: ${describe(libc, errno)}` };
  };

  /** The entry in a sealed memfd, its descriptor passed in an empty datagram. */
  const sendAsFile = (addr: Uint8Array, datagram: Uint8Array): string | null => {
    const memfd = libc.memfd_create(
      encoder.encode("bpfpilot-journal\0"),
      MFD_CLOEXEC |
        MFD_ALLOW_SEALING,
    );
    if (memfd < 0) return failure("memfd_create").reason;
    try {
      for (let done = 0; done < datagram.length;) {
        const n = Number(
          libc.write(memfd, datagram.subarray(done), BigInt(datagram.length - done)),
        );
        if (n <= 0) return failure("writing the memfd").reason;
        done += n;
      }
      if (libc.fcntl(memfd, F_ADD_SEALS, F_SEALS_ALL) < 0) return failure("sealing").reason;
      const control = rightsControl(memfd);
      const { header, keep } = msgHeader(addr, null, control);
      const sent = Number(libc.sendmsg(fd, header, MSG_NOSIGNAL));
      void keep;
      return sent < 0 ? failure(`sending to ${path}`).reason : null;
    } finally {
      libc.close(memfd);
    }
  };

  return {
    send(datagram) {
      if (!open) return "the journal socket is closed";
      if (!address) return `journal socket path too long (${SUN_PATH_MAX - 1} bytes at most)`;
      const sent = Number(
        libc.sendto(fd, datagram, BigInt(datagram.length), MSG_NOSIGNAL, address, address.length),
      );
      if (sent >= 0) return null;
      const { errno, reason } = failure(`sending to ${path}`);
      if (errno !== EMSGSIZE && errno !== ENOBUFS) return reason;
      return sendAsFile(address, datagram);
    },
    close() {
      if (open) libc.close(fd);
      open = false;
    },
  };
}
