/**
 * The release path, as far as this machine can take it: the workflow passes actionlint and the
 * workflow schema (and a broken one does not), the Kubernetes manifests pass the Kubernetes
 * schema (and a broken one does not), and the smoke test the workflow runs on each runner
 * passes here on the bundle (the compiled binary needs denort, which only the runner has).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
const DENO = join(ROOT, "node_modules/.bin/deno");
const WORKFLOW = join(ROOT, ".github/workflows/release.yml");

function validate(...files: string[]) {
  return spawnSync("bash", [join(ROOT, "scripts/package/validate"), ...files], {
    encoding: "utf8",
  });
}

Deno.test("release workflow, Kubernetes manifests, example config: valid; broken copies caught", () => {
  const ok = validate();
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /release\.yml: actionlint and action-validator: ok/);
  assert.match(ok.stdout, /DaemonSet bpfpilot: valid/);
  assert.match(ok.stdout, /CronJob bpfpilot-audit: valid/);
  assert.match(ok.stdout, /bpfpilot\.conf\.example: bpfpilot config check: ok/);

  const dir = mkdtempSync(join(tmpdir(), "bpfp-validate-"));
  try {
    mkdirSync(join(dir, ".github/workflows"), { recursive: true });
    const badFlow = join(dir, ".github/workflows/release.yml");
    writeFileSync(
      badFlow,
      readFileSync(WORKFLOW, "utf8").replace("${{ matrix.arch }}", "${{ matrix.cpu }}"),
    );
    const flow = validate(badFlow);
    assert.equal(flow.status, 1);
    assert.match(flow.stderr, /property "cpu" is not defined/);

    const badSet = join(dir, "bpfpilot.yaml");
    writeFileSync(
      badSet,
      readFileSync(join(ROOT, "packaging/kubernetes/bpfpilot.yaml"), "utf8")
        .replace("hostPID: true", 'hostPID: "yes"'),
    );
    const set = validate(badSet);
    assert.equal(set.status, 1);
    assert.match(set.stderr, /hostPID must be boolean/);

    const badConf = join(dir, "bpfpilot.conf");
    writeFileSync(badConf, "cooldwon = 5\n");
    const conf = validate(badConf);
    assert.equal(conf.status, 1);
    assert.match(conf.stderr, /unknown key 'cooldwon' \(did you mean 'cooldown'\?\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("release workflow: both architectures compiled, smoke-tested on their runner, summed", () => {
  const flow = readFileSync(WORKFLOW, "utf8");
  for (const arch of ["x86_64", "aarch64"]) assert.match(flow, new RegExp(`arch: ${arch}`));
  assert.match(flow, /scripts\/compile\.ts --arch "\$\{\{ matrix\.arch \}\}"/);
  assert.match(flow, /scripts\/package\/smoke "out\/bpfpilot-\$\{\{ matrix\.arch \}\}-linux"/);
  assert.match(flow, /sha256sum -- \* > SHA256SUMS/);
});

Deno.test("smoke test (the workflow's): passes on the bundle here", () => {
  const dir = mkdtempSync(join(tmpdir(), "bpfp-smoke-"));
  try {
    const bundle = join(dir, "bpfpilot.js");
    const build = spawnSync(DENO, [
      "run",
      "-A",
      join(ROOT, "scripts/build.ts"),
      "--out",
      bundle,
      "--quiet",
    ]);
    assert.equal(build.status, 0);
    const r = spawnSync("bash", [join(ROOT, "scripts/package/smoke"), DENO, "run", "-A", bundle], {
      encoding: "utf8",
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /smoke: ok \(\d+\.\d+\.\d+\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
