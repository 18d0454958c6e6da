/**
 * The build outputs: the bundle runs from any directory with no files beside it, and the compile
 * path produces one binary per architecture with the program embedded. A real denort cannot be
 * had here (README), so a stand-in ELF runtime proves the embedding; the runtime side is
 * exercised by the release workflow on a connected runner. Outputs go to temp directories only.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";

const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
const DENO = join(ROOT, "node_modules/.bin/deno");
const distEntries = () => existsSync(join(ROOT, "dist")) ? readdirSync(join(ROOT, "dist")) : [];

Deno.test("bundle: the bundle runs alone from another directory (objects embedded)", () => {
  const built = mkdtempSync(join(tmpdir(), "bpfp-build-"));
  const dir = mkdtempSync(join(tmpdir(), "bpfp-bundle-"));
  try {
    const bundle = join(built, "bpfpilot.js");
    execFileSync(DENO, ["run", "-A", join(ROOT, "scripts/build.ts"), "--quiet", "--out", bundle]);
    copyFileSync(bundle, join(dir, "bpfpilot.js"));
    const out = execFileSync(DENO, ["run", "-A", "--no-config", "bpfpilot.js", "--version"], {
      cwd: dir,
      encoding: "utf8",
    });
    assert.match(out.trim(), /^\d+\.\d+\.\d+$/);
    const text = readFileSync(join(dir, "bpfpilot.js"), "utf8");
    assert.ok(!text.includes('.bpf.o"'), "no BPF object file is looked up at run time");
    // The TOML parser (an npm package) is inside too: the bundle checks a configuration file.
    writeFileSync(
      join(dir, "bpfpilot.conf"),
      'learning-rate = 2\n[tuner.tcp_buffer]\npolicy = "advise-only"\n',
      {
        mode: 0o644,
      },
    );
    const check = spawnSync(
      DENO,
      ["run", "-A", "--no-config", "bpfpilot.js", "config", "check", "bpfpilot.conf"],
      { cwd: dir, encoding: "utf8" },
    );
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /bpfpilot\.conf: valid \(1 setting\(s\), 1 policy rule\(s\)\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(built, { recursive: true, force: true });
  }
});

Deno.test("compile: one binary per architecture, layout detected at run time; a missing denort is explained", () => {
  const dir = mkdtempSync(join(tmpdir(), "bpfp-denort-"));
  const before = distEntries();
  try {
    const fake = join(dir, "denort");
    copyFileSync("/bin/true", fake);
    const compile = (denort: string, arch: string) =>
      spawnSync(
        DENO,
        ["run", "-A", join(ROOT, "scripts/compile.ts"), "--arch", arch, "--out-dir", dir],
        { env: { ...Deno.env.toObject(), DENORT_BIN: denort }, encoding: "utf8" },
      );
    const ok = compile(fake, Deno.build.arch);
    assert.equal(ok.status, 0, ok.stderr);
    const bin = readFileSync(join(dir, `bpfpilot-${Deno.build.arch}-linux`));
    const text = new TextDecoder("latin1").decode(bin);
    assert.ok(text.includes("bpfpilot works fully"), "program embedded");
    assert.ok(text.includes("/usr/lib64"), "every layout's directories are searched");
    assert.ok(!/BPFPILOT_LIBDIR_LAYOUT\s*=\s*"/.test(text), "no layout baked in");

    const bad = compile(join(dir, "missing"), "aarch64");
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /needs the denort runtime/);
    assert.match(bad.stderr, /DENORT_BIN=/);
    assert.doesNotMatch(bad.stderr, /^\s+at /m, "no stack trace");

    const unknown = compile(fake, "mips");
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown --arch mips; use x86_64 or aarch64/);
    assert.deepEqual(distEntries(), before, "nothing written into the checkout's dist/");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
