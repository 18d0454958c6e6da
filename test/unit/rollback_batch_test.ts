import assert from "node:assert/strict";
import { Journal } from "../../src/daemon/journal.ts";
import { rollbackFromJournal } from "../../src/daemon/rollback.ts";

const quiet = {
  debugEnabled: false,
  info() {},
  notice() {},
  error() {},
  warn() {},
  debug() {},
};

Deno.test("rollback forgets what it restored in one go; a failed write stays in the journal", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const j = Journal.open(dir);
    const keys = Array.from({ length: 50 }, (_, i) => `ns:${4026540000 + i}`);
    for (const ns of keys) {
      j.recordOriginal(ns, "net.ipv4.tcp_rmem", "tcp_buffer", [4096, 131072, 6291456], [
        4096,
        131072,
        7000000,
      ]);
      j.recordWritten(ns, "net.ipv4.tcp_rmem", [4096, 131072, 7000000]);
    }
    const written: string[] = [];
    const io = {
      read: () => [4096, 131072, 7000000],
      write: (_s: string, ns: string) => {
        if (ns === keys[7]) throw new Error("injected write failure");
        written.push(ns);
      },
    };
    const r = rollbackFromJournal(j, io, quiet, () => null);
    assert.equal(r.restored.length, 49);
    assert.equal(r.failed.length, 1);
    assert.deepEqual(j.changedEntries().map((e) => e.netns), [keys[7]]);
    j.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
