/**
 * syslog(3) from glibc over FFI: `openlog(ident, LOG_PID|LOG_NDELAY, LOG_DAEMON)` once, then
 * `syslog(priority, "%s", line)` per record. Logged text is only ever the argument of a constant
 * "%s" format: bpftune passed it as the format, so a `%n` in a process name written by an
 * unprivileged user reached printf in a root daemon.
 *
 * syslog() is variadic; calling it through a fixed (int, char*, char*) signature is sound on
 * x86-64 and aarch64 Linux, where the first variadic arguments travel like fixed ones.
 */
import { openLibc } from "../kernel/libc.ts";

export const LOG_PID = 0x01;
export const LOG_NDELAY = 0x08;
export const LOG_DAEMON = 3 << 3;

/** Where records go: one call per line. `priority` is the bare level (3 = err ... 7 = debug). */
export interface SyslogSink {
  send(priority: number, line: string): void;
  close(): void;
}

/** The three libc calls used; tests substitute a recorder. */
export interface LibcSyslog {
  openlog(ident: Uint8Array, option: number, facility: number): void;
  syslog(priority: number, format: Uint8Array, text: Uint8Array): void;
  closelog(): void;
}

const encoder = new TextEncoder();

/** NUL-terminated bytes in an ArrayBuffer of its own: never moved by the GC (openlog keeps it). */
function cString(text: string): Uint8Array {
  const bytes = encoder.encode(text.replaceAll("\0", "\\0"));
  const out = new Uint8Array(new ArrayBuffer(bytes.length + 1));
  out.set(bytes);
  return out;
}

const FORMAT = cString("%s");

/** glibc's syslog(3); null where there is no glibc (musl, or FFI not permitted). */
export function openLibcSyslog(): LibcSyslog | null {
  const libc = openLibc();
  if (!libc) return null;
  return {
    openlog: (ident, option, facility) => libc.openlog(ident, option, facility),
    syslog: (priority, format, text) => libc.syslog(priority, format, text),
    closelog: () => libc.closelog(),
  };
}

/** Opens the log with `ident`; the ident buffer lives as long as the sink (glibc keeps the pointer). */
export function createSyslogSink(libc: LibcSyslog, ident = "bpfpilot"): SyslogSink {
  const identBytes = cString(ident);
  libc.openlog(identBytes, LOG_PID | LOG_NDELAY, LOG_DAEMON);
  let open = true;
  return {
    send(priority, line) {
      if (!open) return;
      libc.syslog(LOG_DAEMON | (priority & 7), FORMAT, cString(line));
      void identBytes; // keep the ident alive while the log is open
    },
    close() {
      if (open) libc.closelog();
      open = false;
    },
  };
}

function isSocket(path: string): boolean {
  try {
    return Deno.statSync(path).isSocket === true;
  } catch {
    return false;
  }
}

/**
 * The system logger, or null when there is none to talk to (no /dev/log socket, or no glibc),
 * so the caller can fall back to stderr instead of logging into the void.
 */
export function openSyslog(ident = "bpfpilot", socketPath = "/dev/log"): SyslogSink | null {
  if (!isSocket(socketPath)) return null;
  const libc = openLibcSyslog();
  return libc && createSyslogSink(libc, ident);
}
