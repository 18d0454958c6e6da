/**
 * statx(2) through glibc against Deno's stat: the same device number (the registry falls back to
 * Deno's stat per look, so one encoding must serve both), inode, size and type.
 */
import assert from "node:assert/strict";
import { makedev, statx, STATX_INO, STATX_SIZE, STATX_TYPE } from "../../src/kernel/statx.ts";

const MASK = STATX_TYPE | STATX_INO | STATX_SIZE;

/** Mount points of file systems on a device with a major number (a few; none in some sandboxes). */
function blockMounts(): string[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .map((line) => line.split(" "))
    .filter((f) => f.length > 4 && !f[2].startsWith("0:") && !f[4].includes("\\"))
    .map((f) => f[4])
    .filter((path) => {
      try {
        return Deno.statSync(path).isDirectory;
      } catch {
        return false;
      }
    })
    .slice(0, 4);
}

Deno.test("statx: dev, inode and size as Deno's stat gives them, on several file systems", () => {
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-statx-" });
  try {
    const file = `${dir}/f`;
    Deno.writeTextFileSync(file, "12345");
    Deno.symlinkSync("/proc/self/ns/net", `${dir}/link`);
    // nsfs, procfs, sysfs, the root, a temp file and a directory, and the mounts of block
    // devices (a major number: 254:0 is 0xfe00 to stat, 0xfe00000 as major << 20 | minor).
    const paths = ["/", "/proc/self/ns/net", "/proc", "/sys", file, dir, ...blockMounts()];
    for (const path of paths) {
      const st = statx(path, true, MASK);
      assert.ok(st, `${path}: statx answered`);
      const want = Deno.statSync(path);
      assert.equal(st.dev, want.dev, `${path}: dev`);
      assert.equal(st.ino, BigInt(want.ino ?? -1), `${path}: ino`);
      assert.equal(st.isSymlink, false);
      if (want.isFile) assert.equal(st.size, want.size, `${path}: size`);
    }
    const link = statx(`${dir}/link`, false, MASK);
    const want = Deno.lstatSync(`${dir}/link`);
    assert.deepEqual([link?.dev, link?.ino, link?.isSymlink], [want.dev, BigInt(want.ino!), true]);
    assert.equal(statx(`${dir}/link`, true, MASK)?.dev, Deno.statSync("/proc/self/ns/net").dev);
    assert.equal(statx(`${dir}/missing`, true, MASK), null);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("makedev: glibc's own, for majors and minors over 8 and 12 bits too", () => {
  const glibc = Deno.dlopen("libc.so.6", {
    gnu_dev_makedev: { parameters: ["u32", "u32"], result: "u64" },
  });
  try {
    const pairs = [[0, 0], [0, 4], [8, 1], [254, 0], [259, 3], [0, 255], [0, 256], [0, 0xfffff]];
    pairs.push([4095, 0x12345], [0x1234, 0x56], [0xfff, 0xfffff]);
    for (const [major, minor] of pairs) {
      const want = Number(glibc.symbols.gnu_dev_makedev(major, minor) as bigint);
      assert.equal(makedev(major, minor), want, `${major}:${minor}`);
    }
  } finally {
    glibc.close();
  }
});
