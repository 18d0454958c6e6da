/**
 * Writes the man pages, shell completions and example configuration, generated from the
 * command-line definition:
 *   DIR/man/bpfpilot.8, bpfpilot-audit.8, bpfpilot-query.8
 *   DIR/completions/bpfpilot.bash, _bpfpilot (zsh), bpfpilot.fish
 *   DIR/bpfpilot.conf.example (`bpfpilot config example`)
 *
 *   deno task docs [--out-dir DIR]     (default dist/docs)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { cliSpec } from "../src/cli/docs/model.ts";
import { manPages } from "../src/cli/docs/man.ts";
import { completions } from "../src/cli/docs/completion.ts";
import { exampleConfig } from "../src/config/example.ts";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { "out-dir": { type: "string" }, quiet: { type: "boolean" } },
});
const out = resolve(values["out-dir"] ?? join(ROOT, "dist", "docs"));
const spec = cliSpec();
const files: Record<string, string> = {};
for (const [name, text] of Object.entries(manPages(spec))) files[join("man", name)] = text;
for (const [name, text] of Object.entries(completions(spec))) {
  files[join("completions", name)] = text;
}
files["bpfpilot.conf.example"] = exampleConfig();
for (const [rel, text] of Object.entries(files)) {
  mkdirSync(dirname(join(out, rel)), { recursive: true });
  writeFileSync(join(out, rel), text);
}
if (!values.quiet) console.error(`docs: wrote ${Object.keys(files).length} files to ${out}`);
