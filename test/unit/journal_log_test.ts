import assert from "node:assert/strict";
import { sameStamp, stampOf } from "../../src/daemon/journal_log.ts";

Deno.test("stampOf: null for a missing file; an append or a rename gives another stamp", () => {
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-stamp-" });
  try {
    const f = `${dir}/state.log`;
    assert.equal(stampOf(f), null);
    assert.equal(stampOf(`${dir}/no/such`), null, "a missing directory too");
    Deno.writeTextFileSync(f, "a\n");
    const st = Deno.statSync(f);
    const a = stampOf(f)!;
    assert.deepEqual([a.ino, a.size], [st.ino, 2], "its inode and size");
    assert.ok(Math.abs(a.mtimeMs - st.mtime!.getTime()) < 1, "its mtime in ms");
    assert.ok(sameStamp(a, stampOf(f)), "the same file, unchanged");
    Deno.writeTextFileSync(f, "b\n", { append: true });
    assert.ok(!sameStamp(a, stampOf(f)), "appended");
    const b = stampOf(f);
    Deno.writeTextFileSync(`${dir}/tmp`, "b\nb\n");
    Deno.renameSync(`${dir}/tmp`, f);
    assert.ok(!sameStamp(b, stampOf(f)), "replaced by a rename, same size");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
