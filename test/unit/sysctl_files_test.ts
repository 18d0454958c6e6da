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
  const failing = new Set<number>();
  const libc = {
    open: (path: Uint8Array, _flags: number) => {
      const at = `${here} ${new TextDecoder().decode(path.subarray(0, path.indexOf(0)))}`;
      if (!files.has(at)) return -1;
      fds.set(next, at);
      return next++;
    },
    close: (fd: number) => (fds.delete(fd) ? 0 : -1),
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
  const kept = new SysctlFiles({
    max,
    random,
    cookieNow: (netns) => cookies.get(netns),
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
  return { f, cookies, kept, keepIn };
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
