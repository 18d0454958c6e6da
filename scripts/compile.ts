/**
 * One self-contained binary per CPU architecture: `deno compile` of the bundle, compiled in a
 * scratch directory so no package.json or node_modules is swept in. The libbpf search detects
 * the distribution's libdir layout at run time (src/libbpf/loader.ts), so the same binary serves
 * Debian, Fedora and Arch.
 *
 * `deno compile` needs the `denort` runtime of the same Deno version. It downloads it unless
 * DENORT_BIN names a local copy; where neither works this stops with a message saying so.
 *
 *   deno task compile [--arch x86_64|aarch64] [--out-dir DIR]  -> DIR/bpfpilot-<arch>-linux
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const TARGETS: Record<string, string> = {
  x86_64: "x86_64-unknown-linux-gnu",
  aarch64: "aarch64-unknown-linux-gnu",
};
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { arch: { type: "string" }, "out-dir": { type: "string" } },
});
const arch = values.arch ?? (process.arch === "arm64" ? "aarch64" : "x86_64");
const target = TARGETS[arch];
if (!target) {
  console.error(`compile: unknown --arch ${arch}; use ${Object.keys(TARGETS).join(" or ")}`);
  process.exit(2);
}
const outDir = resolve(values["out-dir"] ?? join(ROOT, "dist"));
const out = join(outDir, `bpfpilot-${arch}-linux`);
const denoVersion = execFileSync(process.execPath, ["--version"], { encoding: "utf8" })
  .split(" ")[1];

const work = mkdtempSync(join(tmpdir(), "bpfpilot-compile-"));
try {
  const bundle = join(work, "bpfpilot.js");
  execFileSync(
    process.execPath,
    ["run", "-A", join(ROOT, "scripts", "build.ts"), "--out", bundle, "--quiet"],
    { stdio: "inherit" },
  );
  mkdirSync(outDir, { recursive: true });
  const r = spawnSync(
    process.execPath,
    [
      "compile",
      "--no-config",
      "--no-lock",
      "--no-check",
      "-A",
      "--target",
      target,
      "-o",
      out,
      bundle,
    ],
    { cwd: work, encoding: "utf8", env: { ...process.env, DENO_NO_UPDATE_CHECK: "1" } },
  );
  if (r.status !== 0) {
    const text = `${r.stdout}${r.stderr}`;
    if (/denort|dl\.deno\.land|dns error|base binary|failed to lookup/i.test(text)) {
      const why = process.env.DENORT_BIN
        ? `DENORT_BIN=${process.env.DENORT_BIN} is not a usable denort binary`
        : `it is downloaded from dl.deno.land, which this machine could not reach`;
      console.error(
        `compile: deno compile needs the denort runtime of Deno ${denoVersion} (${target}): ` +
          `${why}.\nProvide it: on a connected machine fetch denort-${target}.zip of ` +
          `v${denoVersion} from the Deno releases, unzip it, and run: ` +
          `DENORT_BIN=/path/to/denort deno task compile\n` +
          `(Or run the bundle: deno task build, then \`deno run -A dist/bpfpilot.js\`.)`,
      );
    } else {
      console.error(`compile: deno compile failed for ${target}:\n${text}`);
    }
    process.exitCode = 1;
  } else {
    console.error(`compile: wrote ${out} (${statSync(out).size} bytes)`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
