import assert from "node:assert/strict";
import {
  readOnlyFileMappings,
  releaseStartupPages,
  residentFileKb,
} from "../../src/daemon/startup_pages.ts";
import { errnoOf, libcOrError } from "../../src/kernel/libc.ts";
import { candidatePresent, libraryCandidates } from "../../src/kernel/libdirs.ts";

const MAPS = [
  "55d5d7a00000-55d5d7b00000 r--p 00000000 fe:01 5341673    /usr/lib/bpfpilot/deno",
  "55d5d7b00000-55d5dba00000 r-xp 00100000 fe:01 5341673    /usr/lib/bpfpilot/deno",
  "55d5dba00000-55d5dbc00000 rw-p 04000000 fe:01 5341673    /usr/lib/bpfpilot/deno",
  "55d5dd000000-55d5dd200000 rw-p 00000000 00:00 0          [heap]",
  "7f7f82217000-7f7f82298000 r--s 00000000 00:10 1061       anon_inode:bpf-map",
  "7f7f82300000-7f7f82400000 r--s 00000000 fe:01 77         /root/.cache/deno/v8_code_cache_v2",
  "7f7f44000000-7f7f44001000 ---p 00000000 00:00 0 ",
  "7f7f8249c000-7f7f82500000 r-xp 00000000 fe:01 99         /usr/lib/x86_64-linux-gnu/libbpf.so.1 (deleted)",
  "7ffe684a8000-7ffe68511000 rw-p 00000000 00:00 0          [stack]",
].join("\n");

Deno.test("readOnlyFileMappings: the executable's and libraries' read-only pages only", () => {
  assert.deepEqual(readOnlyFileMappings(MAPS), [
    { start: 0x55d5d7a00000n, end: 0x55d5d7b00000n, path: "/usr/lib/bpfpilot/deno" },
    { start: 0x55d5d7b00000n, end: 0x55d5dba00000n, path: "/usr/lib/bpfpilot/deno" },
    {
      start: 0x7f7f8249c000n,
      end: 0x7f7f82500000n,
      path: "/usr/lib/x86_64-linux-gnu/libbpf.so.1 (deleted)",
    },
  ]);
});

Deno.test("releaseStartupPages: every mapping advised, a refusal reported", () => {
  const calls: string[] = [];
  const libc = {
    madvise: (start: bigint, len: bigint, advice: number) => {
      calls.push(`madvise ${start.toString(16)} ${len} ${advice}`);
      return start === 0x7f7f8249c000n ? -1 : 0;
    },
  };
  const r = releaseStartupPages(libc, () => 22, MAPS);
  assert.deepEqual(calls, [
    "madvise 55d5d7a00000 1048576 21",
    "madvise 55d5d7b00000 66060288 21",
    "madvise 7f7f8249c000 409600 21",
  ]);
  assert.deepEqual(r, { advisedBytes: 1048576 + 66060288, mappings: 2, refused: 22 });
});

/**
 * Resident kB of the file's own pages in this process's read-only mappings of `path`
 * (/proc/self/smaps): Rss less Anonymous (relocated copies, which only swap could take).
 */
function residentKb(path: string): number {
  let sum = 0, ours = false;
  for (const line of Deno.readTextFileSync("/proc/self/smaps").split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) ours = line.endsWith(path) && / r.-p /.test(line);
    else if (ours && line.startsWith("Rss:")) sum += Number(line.split(/\s+/)[1]);
    else if (ours && line.startsWith("Anonymous:")) sum -= Number(line.split(/\s+/)[1]);
  }
  return sum;
}

Deno.test("releaseStartupPages: a library only this process maps leaves memory", () => {
  const libc = libcOrError();
  if (libc instanceof Error) throw libc;
  // A private copy of zlib: no other process maps it, so its pages can really go.
  const dir = Deno.makeTempDirSync({ prefix: "bpfpilot-pages-" });
  const copy = `${dir}/libz-copy.so`;
  const zlibPath = libraryCandidates("libz.so.1").find(candidatePresent);
  assert.ok(zlibPath, "zlib is installed (libbpf needs it)");
  Deno.copyFileSync(Deno.realPathSync(zlibPath), copy);
  // Written back first: dirty pages cannot leave memory until they are on disk.
  using file = Deno.openSync(copy, { read: true });
  file.syncSync();
  const zlib = Deno.dlopen(copy, { zlibVersion: { parameters: [], result: "pointer" } });
  try {
    assert.ok(zlib.symbols.zlibVersion(), "the copy's code ran");
    const before = residentKb(copy);
    assert.ok(before > 0, "the copy has resident pages after running its code");
    const maps = Deno.readTextFileSync("/proc/self/maps").split("\n")
      .filter((l) => l.endsWith(copy)).join("\n");
    const r = releaseStartupPages(libc, () => errnoOf(libc), maps);
    assert.equal(r.refused, null);
    assert.ok(r.mappings >= 2, "its code and read-only data were advised");
    assert.equal(residentKb(copy), 0, `none of its ${before} resident kB is left`);
  } finally {
    zlib.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("residentFileKb: RssFile of a status text, null without one; this process has some", () => {
  assert.equal(
    residentFileKb("VmRSS:\t  61208 kB\nRssAnon:\t   24188 kB\nRssFile:\t   37020 kB\n"),
    37020,
  );
  assert.equal(residentFileKb("VmRSS:\t  61208 kB\n"), null);
  assert.ok((residentFileKb() ?? 0) > 0);
});
