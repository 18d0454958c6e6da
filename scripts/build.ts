/**
 * Builds the self-contained bundle: BPF objects first (incremental), then one ES module with
 * every BPF object and npm dependency inside. `--layout <multiarch|lib64|lib>` bakes the libbpf
 * search order for a distro's libdir layout in (see src/libbpf/loader.ts); `--out` names the file.
 *
 *   deno task build                      -> dist/bpfpilot.js (runtime-detected layout)
 *   deno run -A scripts/build.ts --layout lib64 --out dist/bpfpilot-lib64.js
 */
import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { layout: { type: "string" }, out: { type: "string" }, quiet: { type: "boolean" } },
});
const layouts = ["multiarch", "lib64", "lib"];
if (values.layout && !layouts.includes(values.layout)) {
  console.error(`build: --layout must be one of ${layouts.join(", ")}`);
  process.exit(2);
}
const out = resolve(values.out ?? join(ROOT, "dist", "bpfpilot.js"));

execFileSync(process.execPath, ["run", "-A", join(ROOT, "scripts", "build_bpf.ts"), "--quiet"], {
  stdio: "inherit",
});

const esbuild = join(ROOT, "node_modules", ".bin", "esbuild");
const args = [
  join(ROOT, "src", "main.ts"),
  "--bundle",
  "--format=esm",
  "--platform=node",
  "--target=esnext",
  `--outfile=${out}`,
  "--log-level=warning",
  // commander is CommonJS: give its require() calls of node built-ins something to call.
  '--banner:js=import { createRequire as __bpfpCreateRequire } from "node:module"; ' +
  "const require = __bpfpCreateRequire(import.meta.url);",
];
if (values.layout) args.push(`--define:BPFPILOT_LIBDIR_LAYOUT="${values.layout}"`);
try {
  execFileSync(esbuild, args, { stdio: "inherit", cwd: ROOT });
} catch {
  console.error("build: bundling failed (see esbuild's output above)");
  process.exit(1);
}
if (!values.quiet) console.error(`build: wrote ${out}`);
