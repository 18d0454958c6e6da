/**
 * A power loss on a file system without ordered data can leave a run of NUL bytes inside
 * state.log, records after it: a line with NULs is read as a hole (skipped, one warning naming
 * the file and bytes; a whole record after a leading run is read), while a bad line without a
 * NUL stays a corrupt log.
 */
import assert from "node:assert/strict";
import { Journal, JournalError } from "../../src/daemon/journal.ts";
import { readTail } from "../../src/daemon/journal_log.ts";
import { withTempDir } from "../support/temp_dir.ts";

const RMEM = "net.ipv4.tcp_rmem";
const WMEM = "net.ipv4.tcp_wmem";
const MEM = "net.ipv4.tcp_mem";
const ORIGINAL = [4096, 131072, 6291456];
const TUNED = [4096, 131072, 7000000];

const encoder = new TextEncoder();

/**
 * A journal that is a log of three records alone, each recording the original of one sysctl in
 * the host namespace (RMEM, WMEM, MEM), as `damage` rewrites them.
 */
function withLog(
  damage: (records: string[]) => Uint8Array,
  fn: (dir: string, log: string, records: string[]) => void,
): void {
  withTempDir("bpfp-hole-", (dir) => {
    const j = Journal.open(dir);
    for (const s of [RMEM, WMEM, MEM]) j.recordOriginal("global", s, "tcp_buffer", ORIGINAL, TUNED);
    const log = j.logFile;
    const records = Deno.readTextFileSync(log).split(/(?<=\n)/);
    assert.equal(records.length, 3);
    j.close(); // folds them into state.json: removed, the log alone has them again
    Deno.removeSync(`${dir}/state.json`);
    Deno.writeFileSync(log, damage(records));
    fn(dir, log, records);
  });
}

const bytes = (text: string) => encoder.encode(text).length;

const nuls = (n: number) => new Uint8Array(n);

function concat(...parts: (string | Uint8Array)[]): Uint8Array {
  const bytes = parts.map((p) => typeof p === "string" ? encoder.encode(p) : p);
  const out = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of bytes) out.set(b, (at += b.length) - b.length);
  return out;
}

function openWarned(dir: string): { j: Journal; warnings: string[] } {
  const warnings: string[] = [];
  return { j: Journal.open(dir, { warn: (m) => warnings.push(m) }), warnings };
}

const sysctls = (j: Journal) => j.changedEntries().map((e) => e.sysctl);

Deno.test("a line of NULs is a hole: skipped with one warning naming the file and its bytes", () => {
  // The second record never reached the disk, its newline did not either: NULs up to the third.
  withLog(([a, b, c]) => concat(a, nuls(bytes(b) - 1), "\n", c), (dir, log, [a, b]) => {
    const { j, warnings } = openWarned(dir);
    const [start, end] = [bytes(a), bytes(a) + bytes(b) - 1];
    assert.deepEqual(sysctls(j), [RMEM, MEM], "the records before and after the hole");
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.equal(
      warnings[0].split(", a hole")[0],
      `${log}: skipped ${end - start} NUL bytes at bytes ${start}-${end - 1}`,
    );
    assert.match(warnings[0], /power loss/);
    j.recordOriginal("global", "net.core.rmem_max", "tcp_buffer", [212992], [4194304]);
    j.refresh();
    const other = Journal.open(dir, { warn: () => {} });
    assert.equal(other.changedEntries().length, 3, "appended after the hole, read by another");
    other.close();
    assert.equal(warnings.length, 1, "once per hole");
    j.close(); // folds the log into state.json: the hole is gone
    const again = openWarned(dir);
    assert.deepEqual(again.warnings, []);
    assert.equal(again.j.changedEntries().length, 3);
    again.j.close();
  });
});

Deno.test("NULs before a line's JSON are a hole; the record after them is read", () => {
  // The second record and the third's first bytes' page: NULs run into the third record.
  withLog(([a, b, c]) => concat(a, nuls(bytes(b)), c), (dir, log, [a, b, c]) => {
    const tail = readTail(log, 0)!;
    const start = bytes(a);
    assert.deepEqual(tail.holes, [{ start, end: start + bytes(b), line: 1, whole: false }]);
    assert.equal(tail.lines[1], c.slice(0, -1), "the line's record, past the hole");
    const { j, warnings } = openWarned(dir);
    assert.deepEqual(sysctls(j), [RMEM, MEM]);
    assert.equal(warnings.length, 1);
    j.close();
  });
});

Deno.test("any other line with a NUL holds no record: skipped whole, the lines around it read", () => {
  // Pages are written back whole: a hole can begin or end inside a record.
  const cases: [string, (r: string[]) => Uint8Array][] = [
    ["NULs after a record's JSON", ([a, b, c]) => concat(a, b.slice(0, -1), nuls(8), "\n", c)],
    ["NULs inside a record", ([a, b, c]) => concat(a, b.slice(0, 10), nuls(8), b.slice(10), c)],
    ["NULs, then a record's tail", ([a, b, c]) => concat(a, nuls(8), b.slice(10), c)],
    [
      "NULs, then a record, then NULs",
      ([a, b, c]) => concat(a, nuls(8), b.slice(0, -1), nuls(2), "\n", c),
    ],
  ];
  for (const [what, damage] of cases) {
    withLog(damage, (dir, log, [a, b]) => {
      const { j, warnings } = openWarned(dir);
      assert.deepEqual(sysctls(j), [RMEM, MEM], what);
      assert.equal(warnings.length, 1, `${what}: ${warnings.join("\n")}`);
      assert.match(
        warnings[0],
        new RegExp(`^${log}: skipped \\d+ NUL bytes at bytes ${bytes(a)}-`),
      );
      const tail = readTail(log, 0)!;
      assert.equal(tail.holes.length, 1, what);
      assert.equal(tail.holes[0].line, 1, what);
      assert.ok(tail.holes[0].end <= bytes(a) + bytes(b) + 10, what);
      j.close();
    });
  }
});

Deno.test("a bad line without a NUL is still a corrupt log, and a hole does not hide one", () => {
  const cases: [string, (r: string[]) => Uint8Array][] = [
    ["a record's tail alone", ([a, b, c]) => concat(a, b.slice(10), c)],
    ["a hole, then a bad line", ([a, b, c]) => concat(a, nuls(bytes(b) - 1), "\n", "{oops}\n", c)],
  ];
  for (const [what, damage] of cases) {
    withLog(damage, (dir, log) => {
      assert.throws(() => Journal.open(dir, { warn: () => {} }), (e: unknown) => {
        assert.ok(e instanceof JournalError, what);
        assert.equal(e.kind, "corrupt", what);
        assert.match(e.message, new RegExp(`${log} is damaged: line \\d`), what);
        return true;
      }, what);
    });
  }
});

Deno.test("readTail: no NUL, no hole; a NUL run at the end without a newline is a torn tail", () => {
  withLog(([a, b, c]) => concat(a, b, c, nuls(300)), (_dir, log) => {
    const tail = readTail(log, 0)!;
    assert.deepEqual([tail.lines.length, tail.holes, tail.torn], [3, [], 300]);
  });
});
