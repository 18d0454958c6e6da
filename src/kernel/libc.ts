/**
 * glibc, found once in the system's libdirs (src/kernel/libdirs.ts) and opened on first use:
 * the one libc binding every module shares (the libbpf runtime, sockets, capabilities, syslog,
 * the process name, readiness). Layouts are LP64 Linux (x86-64 and aarch64).
 */
import { candidatePresent, libraryCandidates } from "./libdirs.ts";

const LIBC_SONAME = "libc.so.6";

const LIBC_SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  vasprintf: { parameters: ["buffer", "pointer", "pointer"], result: "i32" },
  free: { parameters: ["pointer"], result: "void" },
  // malloc tuning (src/libbpf/parse_memory.ts).
  mallopt: { parameters: ["i32", "i32"], result: "i32" },
  malloc_trim: { parameters: ["usize"], result: "i32" },
  // Start-up pages given back once running (src/daemon/startup_pages.ts).
  madvise: { parameters: ["usize", "usize", "i32"], result: "i32" },
  sysconf: { parameters: ["i32"], result: "i64" },
  geteuid: { parameters: [], result: "u32" },
  // CPU-time clocks (src/daemon/change_timing.ts, a debug accounting).
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },

  // Files and descriptors. struct stat: st_dev at 0, st_ino at 8 (u64 each) on both arches.
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  // glibc 2.28+ (optional: null before). The journal's look for changes each second: a missing
  // file is an errno here, not an exception as with Deno.statSync (~100 us when cold).
  statx: {
    parameters: ["i32", "buffer", "i32", "u32", "buffer"],
    result: "i32",
    optional: true,
  },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // Runs on Deno's blocking pool so the event loop (timers, signals) never stalls.
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
  /** On a worker thread: waiting for a socket never blocks the event loop. */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  // Variadic in C; one integer argument (NS_GET_NSTYPE takes none).
  ioctl: { parameters: ["i32", "u64", "u64"], result: "i32" },

  // Sockets.
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },

  // Mounts and namespaces.
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "pointer"], result: "i32" },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },

  // Process and capabilities. prctl is variadic in C; integer arguments pass the same way on
  // x86_64 and aarch64 Linux, and PR_SET_NAME's one pointer argument gets its own binding.
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  prctl_name: { name: "prctl", parameters: ["i32", "buffer", "u64", "u64", "u64"], result: "i32" },
  capget: { parameters: ["buffer", "buffer"], result: "i32" },
  capset: { parameters: ["buffer", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },

  // syslog(3): the fallback log where journald is absent.
  openlog: { parameters: ["buffer", "i32", "i32"], result: "void" },
  syslog: { parameters: ["i32", "buffer", "buffer"], result: "void" },
  closelog: { parameters: [], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

let opened: Libc | Error | undefined;

/**
 * glibc's functions, or an Error naming what was tried where there is no glibc (musl) or FFI is
 * not permitted. Looked up once: every later call returns the same answer.
 */
export function libcOrError(): Libc | Error {
  if (opened !== undefined) return opened;
  const tried: string[] = [];
  for (const candidate of libraryCandidates(LIBC_SONAME)) {
    if (!candidatePresent(candidate)) continue;
    try {
      return opened = Deno.dlopen(candidate, LIBC_SYMBOLS).symbols;
    } catch (e) {
      tried.push(`${candidate}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return opened = new Error(
    `glibc (${LIBC_SONAME}) could not be opened; bpfpilot needs glibc and --allow-ffi. ` +
      `Tried: ${tried.join("; ")}`,
  );
}

/** glibc's functions, or null where they cannot be had (see libcOrError). */
export function openLibc(): Libc | null {
  const libc = libcOrError();
  return libc instanceof Error ? null : libc;
}

/** errno of the last synchronous call on this thread: read it at once. */
export function errnoOf(libc: Libc): number {
  const p = libc.__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}
