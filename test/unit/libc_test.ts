import assert from "node:assert/strict";
import { errnoOf, libcOrError, openLibc } from "../../src/kernel/libc.ts";
import { libraryCandidates, systemLibdirs } from "../../src/kernel/libdirs.ts";
import { setProcessName } from "../../src/kernel/process.ts";

Deno.test("libc search: the system's libdirs in the loader's order, then the bare soname", () => {
  const c = libraryCandidates("libc.so.6", systemLibdirs("lib64"));
  assert.equal(c[0], "/usr/lib64/libc.so.6");
  assert.ok(c.indexOf("/usr/lib/libc.so.6") > c.indexOf("/lib64/libc.so.6"));
  assert.equal(c.at(-1), "libc.so.6");
  assert.equal(libraryCandidates("libc.so.6")[0], `${systemLibdirs()[0]}/libc.so.6`);
});

Deno.test("libc: opened once, from a system libdir, and its functions are the real ones", () => {
  const libc = libcOrError();
  if (libc instanceof Error) throw libc;
  assert.equal(openLibc(), libc, "every caller shares the one binding");
  assert.equal(libc.geteuid(), Deno.uid());
  // A failing call sets errno for this thread: close(-1) is EBADF.
  assert.equal(libc.close(-1), -1);
  assert.equal(errnoOf(libc), 9);
  const maps = Deno.readTextFileSync("/proc/self/maps");
  const mapped = maps.split("\n").find((l) => /\/libc\.so\.6$/.test(l));
  assert.ok(mapped, "libc is mapped");
  const dir = mapped.slice(mapped.indexOf("/")).replace(/\/libc\.so\.6$/, "");
  assert.ok(systemLibdirs().includes(dir), `${dir} is one of the searched libdirs`);
});

Deno.test("process name: PR_SET_NAME through the shared libc renames this thread", () => {
  const before = Deno.readTextFileSync("/proc/thread-self/comm").trim();
  try {
    setProcessName("bpfpilot-unit-test-name");
    assert.equal(Deno.readTextFileSync("/proc/thread-self/comm").trim(), "bpfpilot-unit-t");
  } finally {
    setProcessName(before);
  }
  assert.equal(Deno.readTextFileSync("/proc/thread-self/comm").trim(), before);
});
