import assert from "node:assert/strict";
import { basename, dirname, extname, join, resolve } from "../../src/node_compat/path.ts";
import { EventEmitter } from "../../src/node_compat/events.ts";
import { fingerprint } from "../../src/kernel/probe.ts";

Deno.test("node_compat path: the answers node:path gives for POSIX paths", () => {
  for (
    const [p, dir, base] of [
      ["/run/bpfpilot/probe-cache.json", "/run/bpfpilot", "probe-cache.json"],
      ["/etc/", "/", "etc"],
      ["/", "/", ""],
      ["file", ".", "file"],
      ["a/b//", "a", "b"],
      ["//x", "/", "x"],
    ]
  ) {
    assert.equal(dirname(p), dir, `dirname ${p}`);
    assert.equal(basename(p), base, `basename ${p}`);
  }
  assert.equal(basename("/usr/bin/bpfpilot.js", ".js"), "bpfpilot");
  assert.equal(extname("/a/b.tar.gz"), ".gz");
  assert.equal(extname("/a/.hidden"), "");
  assert.equal(join("/proc", "self/smaps"), "/proc/self/smaps");
  assert.equal(join("a", "", "../b"), "b");
  assert.equal(resolve("/a/b", "../c", "d"), "/a/c/d");
  assert.equal(resolve("/x", "/y"), "/y");
  assert.equal(resolve("rel"), `${Deno.cwd()}/rel`);
});

Deno.test("node_compat EventEmitter: listeners in order, counted, emit says if any ran", () => {
  const e = new EventEmitter();
  const seen: string[] = [];
  assert.equal(e.emit("option:x", 1), false);
  e.on("option:x", (v) => seen.push(`a${v}`)).on("option:x", (v) => seen.push(`b${v}`));
  assert.equal(e.listenerCount("option:x"), 2);
  assert.equal(e.emit("option:x", 1), true);
  assert.deepEqual(seen, ["a1", "b1"]);
});

Deno.test("probe cache fingerprint: one changed byte or length changes it", () => {
  const a = new Uint8Array(4096).map((_, i) => i * 7);
  const b = a.slice();
  b[2000] ^= 1;
  assert.equal(fingerprint(a), fingerprint(a.slice()));
  assert.notEqual(fingerprint(a), fingerprint(b));
  assert.notEqual(fingerprint(a), fingerprint(a.subarray(0, 4095)));
});
