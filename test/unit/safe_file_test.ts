import assert from "node:assert/strict";
import {
  readRegularFile,
  SafeFileError,
  tempNameFor,
  writeFileAtomic,
} from "../../src/kernel/safe_file.ts";
import { withTempDir } from "../support/temp_dir.ts";

const withDir = (fn: (dir: string) => void) => withTempDir("bpfp-safe-", fn);

const refused = (re: RegExp) => (e: unknown) => e instanceof SafeFileError && re.test(e.message);

Deno.test("writeFileAtomic: replaces a regular file, creates an absent one, leaves no temp", () => {
  withDir((dir) => {
    writeFileAtomic(`${dir}/a.prom`, "one\n");
    writeFileAtomic(`${dir}/a.prom`, "two\n");
    assert.equal(Deno.readTextFileSync(`${dir}/a.prom`), "two\n");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.prom"]);
  });
});

Deno.test("writeFileAtomic: a symlink or FIFO target is refused and nothing is touched", () => {
  withDir((dir) => {
    Deno.writeTextFileSync(`${dir}/secret`, "keep");
    Deno.symlinkSync(`${dir}/secret`, `${dir}/link.prom`);
    assert.throws(() => writeFileAtomic(`${dir}/link.prom`, "x"), refused(/symbolic link/));
    assert.equal(Deno.readTextFileSync(`${dir}/secret`), "keep");
    assert.ok(Deno.lstatSync(`${dir}/link.prom`).isSymlink);
    new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).outputSync();
    assert.throws(() => writeFileAtomic(`${dir}/fifo`, "x"), refused(/FIFO/));
    assert.throws(() => writeFileAtomic("/dev/null", "x"), refused(/device/));
  });
});

Deno.test("temp names are random, hidden and outside node_exporter's *.prom glob", () => {
  const a = tempNameFor("/d/x.prom"), b = tempNameFor("/d/x.prom");
  assert.notEqual(a, b);
  assert.match(a, /^\/d\/\.x\.prom\.[0-9a-f]{16}\.tmp$/);
});

Deno.test("readRegularFile: devices, FIFOs, directories and oversized files are refused", () => {
  withDir((dir) => {
    assert.throws(() => readRegularFile("/dev/zero", 1024), refused(/device/));
    new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).outputSync();
    assert.throws(() => readRegularFile(`${dir}/fifo`, 1024), refused(/FIFO/));
    assert.throws(() => readRegularFile(dir, 1024), refused(/directory/));
    Deno.writeTextFileSync(`${dir}/big`, "x".repeat(2048));
    assert.throws(() => readRegularFile(`${dir}/big`, 1024), refused(/larger than 1024/));
    assert.equal(readRegularFile(`${dir}/big`, 4096).length, 2048);
    assert.throws(() => readRegularFile(`${dir}/none`, 1024), refused(/does not exist/));
  });
});
