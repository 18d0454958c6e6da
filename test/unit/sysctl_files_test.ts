/**
 * SysctlFiles' bookkeeping on a fake libc: which files stay open, and when one is not used; and
 * which reads of liveSysctls keep the files they open.
 */
import assert from "node:assert/strict";
import {
  daemonKeptFiles,
  keptFilesWithin,
  openFilesLimit,
  SYSCTL_FILES_MAX,
  SysctlFiles,
} from "../../src/kernel/sysctl_files.ts";
import { liveSysctls } from "../../src/daemon/sysctl_io.ts";

const RMEM = "net.ipv4.tcp_rmem", MODERATE = "net.ipv4.tcp_moderate_rcvbuf";

/** /proc/sys as files by path; each fd remembers the file (namespace, path) it was opened on. */
function fakeLibc() {
  let here = "global";
  const files = new Map<string, string>(); // "netns path" -> text
  const fds = new Map<number, string>();
  let next = 3;
  /** Numbers closed, taken again first (lowest), as the kernel gives the lowest free one. */
  const free: number[] = [];
  const failing = new Set<number>();
  const inodes = new Map<string, bigint>(); // file -> its inode (each file its own)
  const libc = {
    open: (path: Uint8Array, _flags: number) => {
      const at = `${here} ${new TextDecoder().decode(path.subarray(0, path.indexOf(0)))}`;
      if (!files.has(at)) return -1;
      free.sort((a, b) => b - a);
      const fd = free.pop() ?? next++;
      fds.set(fd, at);
      return fd;
    },
    close: (fd: number) => (fds.delete(fd) ? (free.push(fd), 0) : -1),
    fstat: (fd: number, buf: Uint8Array) => {
      const at = fds.get(fd);
      if (at === undefined) return -1;
      if (!inodes.has(at)) inodes.set(at, BigInt(1000 + inodes.size));
      const st = new BigUint64Array(buf.buffer, buf.byteOffset, 2);
      st[0] = 5n; // proc's device
      st[1] = inodes.get(at)!;
      return 0;
    },
    pread: (fd: number, buf: Uint8Array, _n: bigint, _off: bigint) => {
      const at = fds.get(fd);
      if (at === undefined || failing.has(fd)) return -1n;
      return BigInt(new TextEncoder().encodeInto(files.get(at)!, buf).written);
    },
    pwrite: (fd: number, buf: Uint8Array, n: bigint, _off: bigint) => {
      const at = fds.get(fd);
      if (at === undefined || failing.has(fd)) return -1n;
      files.set(at, new TextDecoder().decode(buf));
      return n;
    },
  };
  return {
    libc,
    files,
    fds,
    failing,
    enter: (netns: string) => void (here = netns),
    add: (netns: string, sysctl: string, text: string) =>
      files.set(`${netns} /proc/sys/${sysctl.replaceAll(".", "/")}`, text),
  };
}

function setup(max = 64, random = () => 0) {
  const f = fakeLibc();
  const cookies = new Map<string, bigint | null>([["global", null]]);
  const stolen: string[] = [];
  const kept = new SysctlFiles({
    max,
    random,
    cookieNow: (netns) => cookies.get(netns),
    onStolen: (netns, sysctl) => stolen.push(`${netns} ${sysctl}`),
    libc: f.libc as unknown as ConstructorParameters<typeof SysctlFiles>[0]["libc"],
  });
  /** keepHere as inNetns would call it: from inside the namespace. */
  const keepIn = (netns: string, sysctl: string) => {
    f.enter(netns);
    try {
      return kept.keepHere(netns, sysctl);
    } finally {
      f.enter("global");
    }
  };
  return { f, cookies, kept, keepIn, stolen };
}

Deno.test("SysctlFiles: a file opened in a namespace reads and writes that namespace's value from home", () => {
  const { f, cookies, kept, keepIn } = setup();
  f.add("ns:5", RMEM, "4096 131072 6291456\n");
  f.add("global", RMEM, "1 2 3\n");
  cookies.set("ns:5", 77n);
  assert.equal(keepIn("ns:5", RMEM), true);
  assert.equal(kept.read("ns:5", RMEM), "4096 131072 6291456\n");
  assert.equal(kept.write("ns:5", RMEM, "4096 131072 7000000\n"), true);
  assert.equal(f.files.get("ns:5 /proc/sys/net/ipv4/tcp_rmem"), "4096 131072 7000000\n");
  assert.equal(f.files.get("global /proc/sys/net/ipv4/tcp_rmem"), "1 2 3\n");
});

Deno.test("SysctlFiles: an absent or read-only sysctl is not kept; nothing kept reads null", () => {
  const { kept, keepIn, cookies } = setup();
  cookies.set("ns:5", 77n);
  assert.equal(keepIn("ns:5", RMEM), false);
  assert.equal(kept.read("ns:5", RMEM), null);
  assert.equal(kept.write("ns:5", RMEM, "1 2 3\n"), false);
  assert.equal(kept.size, 0);
});

Deno.test("SysctlFiles: once the registry holds another cookie (inode reused) the file is closed, not used", () => {
  const { f, cookies, kept, keepIn } = setup();
  f.add("ns:5", RMEM, "1 2 3\n");
  cookies.set("ns:5", 77n);
  keepIn("ns:5", RMEM);
  cookies.set("ns:5", 78n); // a new namespace took inode 5
  assert.equal(kept.write("ns:5", RMEM, "4 5 6\n"), false);
  assert.equal(f.files.get("ns:5 /proc/sys/net/ipv4/tcp_rmem"), "1 2 3\n");
  assert.equal(kept.size, 0);
  assert.equal(f.fds.size, 0, "its fd is closed");
  keepIn("ns:5", RMEM);
  cookies.delete("ns:5"); // the registry forgot the namespace
  assert.equal(kept.read("ns:5", RMEM), null);
  assert.equal(f.fds.size, 0);
});

Deno.test("SysctlFiles: a failed read or write (namespace gone: ENOENT) drops the file", () => {
  const { f, cookies, kept, keepIn } = setup();
  f.add("ns:5", RMEM, "1 2 3\n");
  f.add("ns:5", MODERATE, "1\n");
  cookies.set("ns:5", 77n);
  keepIn("ns:5", RMEM);
  keepIn("ns:5", MODERATE);
  for (const fd of f.fds.keys()) f.failing.add(fd);
  assert.equal(kept.read("ns:5", RMEM), null);
  assert.equal(kept.write("ns:5", MODERATE, "0\n"), false);
  assert.equal(kept.size, 0);
  assert.equal(f.fds.size, 0);
});

Deno.test("SysctlFiles: bounded, a file picked at random goes (here the least recently used); forgetNetns closes the gone namespaces'", () => {
  const { f, cookies, kept, keepIn } = setup(3);
  for (const ns of ["ns:1", "ns:2", "ns:3", "ns:4"]) {
    f.add(ns, RMEM, "1 2 3\n");
    cookies.set(ns, 1n);
  }
  keepIn("ns:1", RMEM);
  keepIn("ns:2", RMEM);
  keepIn("ns:3", RMEM);
  kept.read("ns:1", RMEM); // ns:2 is now the least recently used
  keepIn("ns:4", RMEM);
  assert.equal(kept.size, 3);
  assert.equal(f.fds.size, 3);
  assert.equal(kept.read("ns:2", RMEM), null);
  assert.notEqual(kept.read("ns:1", RMEM), null);
  kept.forgetNetns(new Set(["ns:1", "ns:4"]));
  assert.equal(f.fds.size, 1, "their files are closed");
  assert.equal(kept.read("ns:1", RMEM), null);
  assert.equal(kept.read("ns:4", RMEM), null);
  assert.notEqual(kept.read("ns:3", RMEM), null);
  kept.closeAll();
  assert.equal(f.fds.size, 0);
});

Deno.test("SysctlFiles: namespaces visited in turn, more than the bound: part of them stays kept (LRU would keep none)", () => {
  let seed = 1;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const { f, cookies, kept, keepIn } = setup(100, random);
  const spaces = Array.from({ length: 150 }, (_, i) => `ns:${i + 1}`);
  for (const ns of spaces) {
    f.add(ns, RMEM, "1 2 3\n");
    cookies.set(ns, 1n);
  }
  let hits = 0, misses = 0;
  for (let round = 0; round < 10; round++) {
    for (const ns of spaces) {
      if (kept.read(ns, RMEM) !== null) hits++;
      else {
        misses++;
        keepIn(ns, RMEM);
      }
    }
  }
  assert.equal(kept.size, 100);
  assert.equal(f.fds.size, 100, "every file dropped is closed");
  assert.ok(hits > (hits + misses) / 4, `${hits} hits, ${misses} misses`);
});

Deno.test("kept files stay within the open-files limit, leaving the rest to the daemon", () => {
  assert.equal(daemonKeptFiles(524288), SYSCTL_FILES_MAX);
  assert.equal(daemonKeptFiles(1024), 512, "a low limit: half of it, not all 1,024");
  assert.equal(daemonKeptFiles(1), 1);
  assert.equal(keptFilesWithin(300, 1024, 128), 300);
  assert.equal(keptFilesWithin(5000, 1024, 128), 896);
  assert.equal(keptFilesWithin(10, 100, 128), 1, "at least one, even when nothing is left");
  const limit = openFilesLimit();
  assert.ok(Number.isSafeInteger(limit) && limit > 0, `this process's limit: ${limit}`);
});

Deno.test("liveSysctls: tuner reads keep the file they open; reads for reports use a kept one but keep none", () => {
  const { f, kept } = setup();
  f.add("global", RMEM, "1 2 3\n"); // the fake's text, unlike the real tcp_rmem
  const tuner = liveSysctls(undefined, kept);
  const report = liveSysctls(undefined, kept, { keepOpened: false });

  const real = report.read(RMEM, "global");
  assert.notDeepEqual(real, [1, 2, 3], "none kept: read by path (the real value)");
  assert.deepEqual(report.readMany!([RMEM, MODERATE], "global").map((v) => v !== null), [
    true,
    true,
  ]);
  assert.equal(kept.size, 0, "a report keeps nothing");
  assert.equal(f.fds.size, 0, "and leaves no file open");

  assert.deepEqual(tuner.read(RMEM, "global"), [1, 2, 3], "a tuner's read keeps the file");
  assert.equal(kept.size, 1);
  assert.deepEqual(report.read(RMEM, "global"), [1, 2, 3], "a report reads through it");
  assert.deepEqual(
    report.readMany!([RMEM, MODERATE], "global").map((v) => v !== null && v.length),
    [3, 1],
    "one kept, one by path",
  );
  assert.equal(kept.size, 1, "still only the tuner's");
  assert.equal(f.fds.size, 1);
});

Deno.test("SysctlFiles: a kept descriptor that other code closed and an open reused is not used (nor closed)", () => {
  const { f, cookies, kept, keepIn, stolen } = setup();
  f.add("ns:5", RMEM, "4096 131072 6291456\n");
  f.add("ns:6", RMEM, "4096 131072 6291456\n");
  cookies.set("ns:5", 55n);
  cookies.set("ns:6", 66n);
  assert.ok(keepIn("ns:5", RMEM));
  const [fd] = [...f.fds.keys()];
  // Native code closes our number; the next open (ns:6's file, from inside ns:6) gets it.
  f.libc.close(fd);
  f.enter("ns:6");
  assert.equal(f.libc.open(new TextEncoder().encode("/proc/sys/net/ipv4/tcp_rmem\0"), 2), fd);
  f.enter("global");
  // Without the check this wrote ns:6's value and read it back as ns:5's: a success.
  assert.equal(kept.write("ns:5", RMEM, "4096 131072 9000000\n"), false);
  assert.equal(f.files.get("ns:6 /proc/sys/net/ipv4/tcp_rmem"), "4096 131072 6291456\n");
  assert.deepEqual(stolen, [`ns:5 ${RMEM}`]);
  assert.equal(kept.size, 0);
  assert.ok(f.fds.has(fd), "the number is another's now: not closed");
  assert.equal(kept.read("ns:5", RMEM), null);
});
