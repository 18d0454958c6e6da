/**
 * Builds the self-contained bundle: BPF objects first (incremental), then one ES module with
 * every BPF object and npm dependency inside. `--layout <multiarch|lib64|lib>` bakes the libbpf
 * search order for a distro's libdir layout in (see src/libbpf/loader.ts); `--out` names the file.
 *
 *   deno task build                      -> dist/bpfpilot.js (runtime-detected layout)
 *   deno run -A scripts/build.ts --layout lib64 --out dist/bpfpilot-lib64.js
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
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
// One stand-in per file, named after the module (test/unit/node_compat_test.ts checks them).
const NODE_COMPAT = readdirSync(join(ROOT, "src", "node_compat"))
  .filter((f) => f.endsWith(".ts")).map((f) => f.slice(0, -3));
const args = [
  join(ROOT, "src", "main.ts"),
  "--bundle",
  "--format=esm",
  "--platform=node",
  "--target=esnext",
  `--outfile=${out}`,
  "--log-level=warning",
  // commander requires node built-ins: small stand-ins take their place, so no start loads
  // Deno's Node compatibility layer (~90 ms and ~10 MB: src/node_compat/events.ts).
  ...NODE_COMPAT.map((m) => `--alias:node:${m}=./src/node_compat/${m}.ts`),
];
if (values.layout) args.push(`--define:BPFPILOT_LIBDIR_LAYOUT="${values.layout}"`);
try {
  execFileSync(esbuild, args, { stdio: "inherit", cwd: ROOT });
} catch {
  console.error("build: bundling failed (see esbuild's output above)");
  process.exit(1);
}
// A static import of a node: module would load the Node layer at every start again.
const nodeImport = /^import\b[^;]*?from\s*"(node:[^"]+)"|\brequire\("(node:[^"]+)"\)/m.exec(
  readFileSync(out, "utf8"),
);
if (nodeImport) {
  console.error(
    `build: the bundle imports ${nodeImport[1] ?? nodeImport[2]} at load; use a Deno API, a ` +
      "stand-in in src/node_compat/, or a dynamic import where it is needed",
  );
  process.exit(1);
}
if (!values.quiet) console.error(`build: wrote ${out}`);
