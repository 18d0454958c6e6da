/** `scripts/kernel-matrix --clean`: removes what the matrix caches, and nothing else. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { ROOT } from "../support/daemon.ts";

function cache(extra: Record<string, string> = {}): string {
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-km-cache-" });
  for (const sub of ["k/6.1.0-56-amd64/boot", "initrd", "results/6.1", "apt", "debs"]) {
    Deno.mkdirSync(`${dir}/${sub}`, { recursive: true });
  }
  Deno.writeTextFileSync(`${dir}/k/6.1.0-56-amd64/vmlinux`, "x".repeat(4096));
  Deno.writeTextFileSync(`${dir}/.lock`, "");
  for (const [name, text] of Object.entries(extra)) Deno.writeTextFileSync(`${dir}/${name}`, text);
  return dir;
}

function clean(dir: string) {
  return spawnSync(`${ROOT}/scripts/kernel-matrix`, ["--clean"], {
    encoding: "utf8",
    env: { ...Deno.env.toObject(), BPFPILOT_KM_CACHE: dir },
    timeout: 60_000,
  });
}

Deno.test("kernel-matrix --clean deletes the cache it made and says how much", () => {
  const dir = cache();
  try {
    const r = clean(dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`removed the kernel-matrix cache ${dir} \\(\\d`));
    assert.throws(() => Deno.statSync(dir), "the cache directory is gone");
    const again = clean(dir);
    assert.equal(again.status, 0);
    assert.match(again.stderr, /nothing to clean/);
  } finally {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // removed by the test
    }
  }
});

Deno.test("kernel-matrix --clean leaves files it did not put there", () => {
  const dir = cache({ "notes.txt": "mine" });
  try {
    const r = clean(dir);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(Deno.readTextFileSync(`${dir}/notes.txt`), "mine");
    assert.throws(() => Deno.statSync(`${dir}/k`));
    assert.match(r.stderr, /left in .* what kernel-matrix did not put there/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
