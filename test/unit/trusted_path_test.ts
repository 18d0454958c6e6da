import assert from "node:assert/strict";
import {
  checkTrustedDir,
  forbiddenStateDir,
  type PathOwner,
  UntrustedPathError,
} from "../../src/kernel/trusted_path.ts";
import { prepareStateDir, StateDirError } from "../../src/daemon/state_dir.ts";
import { restoreGuard } from "../../src/daemon/restorable.ts";
import { TUNERS } from "../../src/tuners/registry.ts";

const refuseRestore = restoreGuard(TUNERS);

function fakeStat(tree: Record<string, Partial<PathOwner>>) {
  return (p: string): PathOwner | null =>
    tree[p] ? { uid: 0, mode: 0o755, isDirectory: true, isSymlink: false, ...tree[p] } : null;
}

Deno.test("trusted dirs: owner root or self, no group/world write, sticky parents allowed", () => {
  const ok = fakeStat({ "/": {}, "/tmp": { mode: 0o1777 }, "/tmp/s": { mode: 0o700 } });
  checkTrustedDir("/tmp/s", "state directory", ok, 0);
  const cases: [Record<string, Partial<PathOwner>>, RegExp][] = [
    [{ "/": {}, "/tmp": { mode: 0o1777 }, "/tmp/s": { uid: 1000 } }, /owned by uid 1000/],
    [{ "/": {}, "/tmp": { mode: 0o1777 }, "/tmp/s": { mode: 0o777 } }, /writable by every user/],
    [{ "/": {}, "/tmp": { mode: 0o1777 }, "/tmp/s": { mode: 0o770 } }, /writable by its group/],
    [{ "/": {}, "/tmp": { mode: 0o777 }, "/tmp/s": { mode: 0o700 } }, /\/tmp is writable/],
    [{ "/": {}, "/tmp": { uid: 1000 }, "/tmp/s": {} }, /\/tmp is owned by uid 1000/],
    [{ "/": {}, "/tmp": {}, "/tmp/s": { isDirectory: false } }, /is not a directory/],
  ];
  for (const [tree, re] of cases) {
    assert.throws(
      () => checkTrustedDir("/tmp/s", "state directory", fakeStat(tree), 0),
      (e: Error) => e instanceof UntrustedPathError && re.test(e.message),
      JSON.stringify(tree),
    );
  }
  // The daemon's own uid may own it too.
  checkTrustedDir("/tmp/s", "x", fakeStat({ "/": {}, "/tmp": {}, "/tmp/s": { uid: 42 } }), 42);
});

Deno.test("state dir: never /, /proc, /sys or /dev", () => {
  assert.equal(forbiddenStateDir("/"), "the root directory");
  assert.equal(forbiddenStateDir("/proc/1"), "under /proc");
  assert.equal(forbiddenStateDir("/var/lib/bpfpilot"), null);
  assert.equal(forbiddenStateDir("/devices"), null);
});

Deno.test("prepareStateDir: typo, file, loose modes and / get clear errors", () => {
  const base = Deno.makeTempDirSync({ prefix: "bpfp-sd-" });
  try {
    const expect = (fn: () => unknown, kind: string, re: RegExp) =>
      assert.throws(
        fn,
        (e: Error) => e instanceof StateDirError && e.kind === kind && re.test(e.message),
      );
    expect(() => prepareStateDir(`${base}/typo`, { create: false }), "missing", /does not exist/);
    assert.throws(() => Deno.statSync(`${base}/typo`), "not created");
    Deno.writeTextFileSync(`${base}/file`, "");
    expect(() => prepareStateDir(`${base}/file`, { create: true }), "untrusted", /is a file/);
    Deno.mkdirSync(`${base}/open`);
    Deno.chmodSync(`${base}/open`, 0o777);
    expect(() => prepareStateDir(`${base}/open`, { create: true }), "untrusted", /every user/);
    expect(() => prepareStateDir("/", { create: true }), "untrusted", /root directory/);
    expect(() => prepareStateDir("", { create: true }), "missing", /empty/);
    const made = prepareStateDir(`${base}/new/sub`, { create: true });
    assert.equal(Deno.statSync(made).mode! & 0o777, 0o700);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("rollback restores only managed sysctls, within their domain", () => {
  assert.equal(refuseRestore("net.ipv4.tcp_rmem", [4096, 131072, 6291456]), null);
  assert.match(refuseRestore("net.ipv4.ip_forward", [1])!, /no bpfpilot tuner manages it/);
  assert.match(refuseRestore("kernel.core_pattern", "|/tmp/evil")!, /no bpfpilot tuner/);
  assert.match(refuseRestore("net.ipv4.tcp_rmem", [1, 2])!, /outside its domain/);
  assert.match(refuseRestore("net.ipv4.tcp_rmem", [1, 2, -3])!, /outside its domain/);
  assert.match(refuseRestore("net.ipv4.tcp_rmem", "4096 1 1")!, /outside its domain/);
});
