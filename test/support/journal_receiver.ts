/**
 * A stand-in for journald's native socket: an AF_UNIX SOCK_DGRAM socket bound in a temp
 * directory (through libc, as the daemon's sender), whose datagrams are parsed with the native
 * protocol, including entries passed as a memfd with SCM_RIGHTS as journald accepts them.
 */
import { decodeJournalEntry } from "../../src/log/journal_protocol.ts";
import {
  AF_UNIX,
  errnoOf,
  FD_CMSG_SPACE,
  msgHeader,
  openLibc,
  SCM_RIGHTS,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
  unixAddress,
} from "../../src/kernel/libc_socket.ts";

const MSG_CMSG_CLOEXEC = 0x40000000;
const EAGAIN = 11;
/** Bigger than any datagram a unix socket lets through with default buffers. */
const MAX_DATAGRAM = 4 << 20;

const libc = openLibc() ?? (() => {
  throw new Error("the journal receiver needs glibc through FFI");
})();

function errno(): number {
  return errnoOf(libc);
}

/** One entry: field -> value (the last one for a repeated name), plus how it arrived. */
export interface ReceivedEntry {
  fields: Record<string, string>;
  /** Raw values (binary ones included) in order. */
  raw: [string, Uint8Array][];
  viaMemfd: boolean;
}

export class JournalReceiver {
  readonly entries: ReceivedEntry[] = [];
  /** The temp directory made for the socket, or null when the caller named the path. */
  readonly dir: string | null;
  readonly path: string;
  readonly #fd: number;
  readonly #buf = new Uint8Array(MAX_DATAGRAM);
  readonly #timer: ReturnType<typeof setInterval>;

  /** Binds `path` (a journald restarting at the same place), else a socket in a new temp dir. */
  constructor(path?: string) {
    this.dir = path ? null : Deno.makeTempDirSync({ prefix: "bpfp-journald-" });
    this.path = path ?? `${this.dir}/socket`;
    this.#fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const addr = unixAddress(this.path)!;
    if (this.#fd < 0 || libc.bind(this.#fd, addr, addr.length) < 0) {
      throw new Error(`cannot bind ${this.path}: errno ${errno()}`);
    }
    Deno.chmodSync(this.path, 0o666);
    this.#timer = setInterval(() => this.drain(), 5);
  }

  /** Reads every datagram waiting now. */
  drain(): void {
    for (;;) {
      const control = new Uint8Array(FD_CMSG_SPACE);
      const { header, keep } = msgHeader(null, this.#buf, control);
      const n = Number(libc.recvmsg(this.#fd, header, MSG_CMSG_CLOEXEC));
      void keep;
      if (n < 0) {
        if (errno() === EAGAIN) return;
        throw new Error(`recvmsg: errno ${errno()}`);
      }
      const controlLen = Number(new DataView(header.buffer).getBigUint64(40, true));
      const c = new DataView(control.buffer);
      const passedFd = controlLen >= 20 && c.getInt32(8, true) === SOL_SOCKET &&
          c.getInt32(12, true) === SCM_RIGHTS
        ? c.getInt32(16, true)
        : -1;
      let datagram = this.#buf.slice(0, n);
      if (passedFd >= 0) {
        try {
          datagram = Deno.readFileSync(`/proc/self/fd/${passedFd}`);
        } finally {
          libc.close(passedFd);
        }
      }
      const raw = decodeJournalEntry(datagram);
      const decoder = new TextDecoder();
      const fields: Record<string, string> = {};
      for (const [k, v] of raw) fields[k] = decoder.decode(v);
      this.entries.push({ fields, raw, viaMemfd: passedFd >= 0 });
    }
  }

  matching(pred: (f: Record<string, string>) => boolean): Record<string, string>[] {
    this.drain();
    return this.entries.map((e) => e.fields).filter(pred);
  }

  /** The first entry (already here or still to come) that matches, or an error after timeout. */
  async waitFor(
    pred: (f: Record<string, string>) => boolean,
    timeoutMs = 20_000,
  ): Promise<Record<string, string>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.matching(pred)[0];
      if (found) return found;
      if (Date.now() > deadline) {
        const seen = this.entries.map((e) => e.fields.MESSAGE).join("\n");
        throw new Error(`no matching journal entry within ${timeoutMs} ms; got:\n${seen}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    clearInterval(this.#timer);
    try {
      this.drain();
    } finally {
      libc.close(this.#fd);
      if (this.dir) Deno.removeSync(this.dir, { recursive: true });
      else Deno.removeSync(this.path);
    }
  }
}
