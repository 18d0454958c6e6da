/**
 * One self-contained binary per distro libdir layout (libbpf search order baked in):
 * dist/bpfpilot-multiarch (Debian/Ubuntu), dist/bpfpilot-lib64 (Fedora/RHEL/SUSE),
 * dist/bpfpilot-lib (Arch/CachyOS). Each is `deno compile` of the bundle built for that layout,
 * compiled in an isolated directory so no package.json or node_modules is swept in.
 *
 * `deno compile` needs the `denort` runtime of the same Deno version. It downloads it unless
 * DENORT_BIN names a local copy; where neither works this stops with a message saying so.
 *
 *   deno task compile [--layout lib64]
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const LAYOUTS = ["multiarch", "lib64", "lib"];
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { layout: { type: "string", multiple: true } },
});
const layouts = values.layout?.length ? values.layout : LAYOUTS;
for (const l of layouts) {
  if (!LAYOUTS.includes(l)) {
    console.error(`compile: unknown layout ${l}; use ${LAYOUTS.join(", ")}`);
    process.exit(2);
  }
}

const denoVersion = execFileSync(process.execPath, ["--version"], { encoding: "utf8" })
  .split(" ")[1];
const target = process.arch === "arm64" ? "aarch64-unknown-linux-gnu" : "x86_64-unknown-linux-gnu";

for (const layout of layouts) {
  const work = join(ROOT, "dist", "compile", layout);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const bundle = join(work, "bpfpilot.js");
  execFileSync(
    process.execPath,
    [
      "run",
      "-A",
      join(ROOT, "scripts", "build.ts"),
      "--layout",
      layout,
      "--out",
      bundle,
      "--quiet",
    ],
    { stdio: "inherit" },
  );
  const out = join(ROOT, "dist", `bpfpilot-${layout}`);
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
      "--output",
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
          `(The bundle itself is ready: ${bundle}; run it with \`deno run -A ${bundle}\`.)`,
      );
    } else {
      console.error(`compile: deno compile failed for layout ${layout}:\n${text}`);
    }
    process.exit(1);
  }
  console.error(`compile: wrote ${out} (${statSync(out).size} bytes)`);
}
// Keep a copy of the default bundle next to the binaries for `deno run` users.
copyFileSync(
  join(ROOT, "dist", "compile", layouts[0], "bpfpilot.js"),
  join(ROOT, "dist", "bpfpilot-bundle.js"),
);
