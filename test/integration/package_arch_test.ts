/**
 * The Arch Linux / CachyOS packages, built by makepkg here (Debian ships it) and installed with
 * `pacman -U --root` into a scratch root. namcap is not available, so a path and metadata check
 * stands in for it: every file under Arch's prefixes, no /usr/local, no lib64, units naming
 * installed paths, the dependencies and backup files declared. The installed launcher then runs
 * from the scratch root: `--version` and `support --json` (with this checkout's Deno on PATH
 * standing in for Arch's deno package). bpfpilot-bin is built from a stand-in release binary
 * (a real denort cannot be had here) and must come out byte-identical: not stripped.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { exampleConfig } from "../../src/config/example.ts";
import { join, resolve } from "node:path";
import { PUBLISHER } from "../support/publisher.ts";

const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
const EXAMPLE_CONFIG = "usr/share/doc/bpfpilot/bpfpilot.conf.example";
const DENO = join(ROOT, "node_modules/.bin/deno");
const have = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const missing = ["makepkg", "pacman", "bsdtar"].filter((t) => !have(t));
const why = missing.length
  ? `${missing.join(", ")} missing (bash scripts/setup installs makepkg, pacman-package-manager, ` +
    `libarchive-tools)`
  : null;
if (why) console.error(`package_arch_test skipped: ${why}`);

function buildPackage(out: string, ...args: string[]): string {
  const r = spawnSync("bash", [join(ROOT, "scripts/package/arch"), "--out-dir", out, ...args], {
    encoding: "utf8",
    env: { ...Deno.env.toObject(), ...PUBLISHER },
  });
  assert.equal(r.status, 0, `makepkg build failed:\n${r.stdout}${r.stderr}`);
  const pkgs = readdirSync(out).filter((f) => f.endsWith(".pkg.tar.zst"));
  assert.equal(pkgs.length, 1, pkgs.join(" "));
  return join(out, pkgs[0]);
}

/** A fresh root with an empty pacman database, the package installed into it. */
function installIntoScratch(pkg: string, scratch: string): void {
  mkdirSync(join(scratch, "var/lib/pacman/local"), { recursive: true });
  const r = spawnSync("pacman", [
    "-U",
    "--root",
    scratch,
    "--dbpath",
    join(scratch, "var/lib/pacman"),
    "--noconfirm",
    "-dd",
    pkg,
  ], { encoding: "utf8" });
  assert.equal(r.status, 0, `pacman -U failed:\n${r.stdout}${r.stderr}`);
}

function pkgInfo(pkg: string): Map<string, string[]> {
  const text = execFileSync("bsdtar", ["-xOf", pkg, ".PKGINFO"], { encoding: "utf8" });
  const out = new Map<string, string[]>();
  for (const m of text.matchAll(/^(\w+) = (.*)$/gm)) {
    out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

/** The stand-in for namcap: where files are, who owns them, what units point at. */
function checkLayout(pkg: string, scratch: string): string[] {
  const listing = execFileSync("bsdtar", ["-tvf", pkg], { encoding: "utf8" }).trim().split("\n");
  const files = listing.map((l) => l.split(/\s+/).slice(8).join(" ")).filter((p) =>
    !p.startsWith(".") && !p.endsWith("/")
  );
  for (const line of listing) assert.match(line, /^\S+\s+0 root\s+root /, `owned by root: ${line}`);
  for (const f of files) {
    assert.match(
      f,
      /^(usr\/(bin|lib|share)\/|etc\/default\/)/,
      `${f}: outside Arch's prefixes`,
    );
    assert.doesNotMatch(f, /usr\/local|lib64|^usr\/sbin|^(bin|sbin|lib)\//, f);
  }
  for (const page of ["bpfpilot", "bpfpilot-audit", "bpfpilot-query"]) {
    assert.ok(files.includes(`usr/share/man/man8/${page}.8.gz`), `man page ${page}(8)`);
  }
  for (
    const c of [
      "usr/share/bash-completion/completions/bpfpilot",
      "usr/share/zsh/site-functions/_bpfpilot",
      "usr/share/fish/vendor_completions.d/bpfpilot.fish",
    ]
  ) assert.ok(files.includes(c), c);
  // The example configuration is documentation; /etc/bpfpilot/bpfpilot.conf is the admin's.
  assert.equal(
    readFileSync(join(scratch, EXAMPLE_CONFIG), "utf8"),
    exampleConfig(),
    "the generated example configuration is shipped",
  );
  assert.ok(!files.some((f) => f.startsWith("etc/bpfpilot/")), "no configuration file in /etc");
  // Every absolute path a unit runs must be installed by the package, except kill(1) for
  // ExecReload (util-linux, which systemd itself depends on).
  for (const unit of files.filter((f) => f.startsWith("usr/lib/systemd/system/"))) {
    const text = readFileSync(join(scratch, unit), "utf8");
    for (const m of text.matchAll(/^Exec\w+=[-@+!]*(\/\S+)/gm)) {
      if (m[1] === "/bin/kill" || m[1] === "/usr/bin/kill") continue;
      assert.ok(files.includes(m[1].slice(1)), `${unit} runs ${m[1]}, which is installed`);
    }
  }
  const info = pkgInfo(pkg);
  assert.deepEqual(info.get("backup"), ["etc/default/bpfpilot", "etc/default/bpfpilot-audit"]);
  assert.deepEqual(info.get("license"), ["GPL-2.0-only"]);
  assert.equal(statSync(join(scratch, "usr/bin/bpfpilot")).mode & 0o777, 0o755);
  return files;
}

Deno.test({
  name: "arch: bpfpilot from source builds with makepkg, installs with pacman --root and runs",
  ignore: why !== null,
  fn() {
    const dir = mkdtempSync(join(tmpdir(), "bpfp-arch-"));
    try {
      const pkg = buildPackage(join(dir, "out"));
      const scratch = join(dir, "root");
      installIntoScratch(pkg, scratch);
      checkLayout(pkg, scratch);
      assert.deepEqual(pkgInfo(pkg).get("depend"), ["deno", "libbpf"]);
      assert.deepEqual(pkgInfo(pkg).get("url"), [PUBLISHER.BPFPILOT_URL], "from release.conf");
      // Arch's layout is baked in: the libbpf search tries /usr/lib/libbpf.so.1 first.
      const bundle = readFileSync(join(scratch, "usr/lib/bpfpilot/bpfpilot.js"), "utf8");
      assert.match(bundle, /\? "lib" : void 0/);

      const env = {
        ...Deno.env.toObject(),
        PATH: `${join(ROOT, "node_modules/.bin")}:/usr/bin:/bin`,
      };
      const launcher = join(scratch, "usr/bin/bpfpilot");
      const version = spawnSync(launcher, ["--version"], { env, encoding: "utf8" });
      assert.equal(version.stdout.trim(), "0.1.0", version.stderr);
      const support = spawnSync(launcher, ["support", "--json"], { env, encoding: "utf8" });
      const report = JSON.parse(support.stdout);
      assert.ok(["full", "legacy"].includes(report.level), support.stdout + support.stderr);
      assert.match(report.libbpf.version, /^1\./);

      // Without a deno the launcher says what to install.
      const noDeno = spawnSync(launcher, ["--version"], {
        env: { ...env, PATH: "/nonexistent" },
        encoding: "utf8",
      });
      assert.equal(noDeno.status, 1);
      assert.match(
        noDeno.stderr,
        /Deno is not installed; install it \(Arch\/CachyOS: pacman -S deno\)/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});

Deno.test({
  name: "arch: bpfpilot-bin installs the release binary unstripped, with the extras",
  ignore: why !== null,
  fn() {
    const dir = mkdtempSync(join(tmpdir(), "bpfp-arch-bin-"));
    try {
      // A stand-in release binary: deno compile with a stand-in runtime (README: no denort here).
      const fake = join(dir, "denort");
      copyFileSync("/bin/true", fake);
      const compiled = spawnSync(
        DENO,
        ["run", "-A", join(ROOT, "scripts/compile.ts"), "--out-dir", join(dir, "bin")],
        { env: { ...Deno.env.toObject(), DENORT_BIN: fake }, encoding: "utf8" },
      );
      assert.equal(compiled.status, 0, compiled.stderr);
      const binary = join(dir, "bin", `bpfpilot-${Deno.build.arch}-linux`);
      const pkg = buildPackage(join(dir, "out"), "--bin", "--binary", binary);
      const scratch = join(dir, "root");
      installIntoScratch(pkg, scratch);
      const files = checkLayout(pkg, scratch);
      assert.ok(!files.some((f) => f.startsWith("usr/lib/bpfpilot/")), "no bundle: the binary");
      const info = pkgInfo(pkg);
      assert.deepEqual(info.get("provides"), ["bpfpilot"]);
      assert.deepEqual(info.get("conflict"), ["bpfpilot"]);
      assert.deepEqual(info.get("depend"), ["glibc", "libbpf"]);
      assert.ok(
        readFileSync(join(scratch, "usr/bin/bpfpilot")).equals(readFileSync(binary)),
        "the binary is installed byte for byte (options=(!strip))",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
