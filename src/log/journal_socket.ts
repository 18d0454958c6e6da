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

import {
  AF_UNIX,
  describeErrno,
  ERRNO,
  errnoOf,
  FD_CMSG_SPACE,
  MSG_NOSIGNAL,
  msgHeader,
  openLibc,
  SCM_RIGHTS,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
  SUN_PATH_MAX,
  unixAddress,
} from "../kernel/libc_socket.ts";

export const DEFAULT_JOURNAL_SOCKET = "/run/systemd/journal/socket";
/** Test switch: send to this socket instead (README "Environment variables"). */
export const JOURNAL_SOCKET_ENV = "BPFPILOT_JOURNAL_SOCKET";

/** Where entries go; null from send() means journald took the entry, else why it did not. */
export interface JournalSink {
  send(datagram: Uint8Array): string | null;
  close(): void;
}

const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
const F_SEALS_ALL = 1 | 2 | 4 | 8; // SEAL, SHRINK, GROW, WRITE: journald maps sealed memfds

const encoder = new TextEncoder();

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
    return { errno, reason: `${what}: ${describeErrno(libc, errno)}` };
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
      if (errno !== ERRNO.EMSGSIZE && errno !== ERRNO.ENOBUFS) return reason;
      return sendAsFile(address, datagram);
    },
    close() {
      if (open) libc.close(fd);
      open = false;
    },
  };
}
