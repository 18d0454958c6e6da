/**
 * The build outputs: the bundle runs from any directory with no files beside it, and the compile
 * path produces one binary per libdir layout with the program embedded. A real denort cannot be
 * had here (README), so a stand-in ELF runtime proves the embedding; the runtime side is not
 * exercised.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";

const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
const DENO = join(ROOT, "node_modules/.bin/deno");

Deno.test("bundle: dist/bpfpilot.js runs alone from another directory (objects embedded)", () => {
  execFileSync(DENO, ["run", "-A", join(ROOT, "scripts/build.ts"), "--quiet"]);
  const dir = mkdtempSync(join(tmpdir(), "bpfp-bundle-"));
  try {
    copyFileSync(join(ROOT, "dist/bpfpilot.js"), join(dir, "bpfpilot.js"));
    const out = execFileSync(DENO, ["run", "-A", "--no-config", "bpfpilot.js", "--version"], {
      cwd: dir,
      encoding: "utf8",
    });
    assert.match(out.trim(), /^\d+\.\d+\.\d+$/);
    const bundle = readFileSync(join(dir, "bpfpilot.js"), "utf8");
    assert.ok(!bundle.includes('.bpf.o"'), "no BPF object file is looked up at run time");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("compile: one binary per layout, layout baked in; a missing denort is explained", () => {
  const dir = mkdtempSync(join(tmpdir(), "bpfp-denort-"));
  try {
    const fake = join(dir, "denort");
    copyFileSync("/bin/true", fake);
    const ok = spawnSync(
      DENO,
      ["run", "-A", join(ROOT, "scripts/compile.ts"), "--layout", "lib64"],
      {
        env: { ...Deno.env.toObject(), DENORT_BIN: fake },
        encoding: "utf8",
      },
    );
    assert.equal(ok.status, 0, ok.stderr);
    const bin = readFileSync(join(ROOT, "dist/bpfpilot-lib64"));
    const text = new TextDecoder("latin1").decode(bin);
    assert.ok(text.includes("bpfpilot works fully"), "program embedded");
    assert.ok(text.includes('"lib64"'), "layout baked in");

    const bad = spawnSync(
      DENO,
      ["run", "-A", join(ROOT, "scripts/compile.ts"), "--layout", "lib"],
      {
        env: { ...Deno.env.toObject(), DENORT_BIN: join(dir, "missing") },
        encoding: "utf8",
      },
    );
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /needs the denort runtime/);
    assert.match(bad.stderr, /DENORT_BIN=/);
    assert.doesNotMatch(bad.stderr, /^\s+at /m, "no stack trace");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
