/**
 * The example configuration (`bpfpilot config example`, shipped as
 * /usr/share/doc/bpfpilot/bpfpilot.conf.example): every key of the option table, commented out;
 * valid as it is and valid uncommented, so it cannot fall behind the flags.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { spawnSync } from "node:child_process";
import { exampleConfig } from "../../src/config/example.ts";
import { configKeys } from "../../src/config/options.ts";
import { parseConfig } from "../../src/config/parse.ts";
import { UNSET_FLAGS } from "../../src/cli/run_options.ts";
import { TUNERS } from "../../src/tuners/registry.ts";
import { LAUNCHER } from "../support/daemon.ts";

/** The example with every `# key = value` and `# [table]` line uncommented. */
const uncommented = (text: string) => text.replace(/^# (?=[\w-]+ = |\[)/gm, "");

Deno.test("config example: every key commented out; the file is valid and sets nothing", () => {
  const text = exampleConfig();
  const parsed = parseConfig(text, TUNERS);
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(parsed.settings, {});
  for (const k of configKeys()) {
    assert.match(text, new RegExp(`^# ${k.key} = `, "m"), `key ${k.key} is in the example`);
  }
});

Deno.test("config example: uncommented, it sets every key (defaults as the daemon's) validly", () => {
  const parsed = parseConfig(uncommented(exampleConfig()), TUNERS);
  assert.deepEqual(parsed.problems, []);
  assert.deepEqual(
    Object.keys(parsed.settings).sort(),
    configKeys().map((k) => k.attribute).sort(),
  );
  const s = parsed.settings as Record<string, unknown>;
  assert.equal(s.learningRate, "4");
  assert.equal(s.cooldown, "5");
  assert.equal(s.log, "auto");
  assert.equal(s.advise, false);
  assert.equal(parsed.tuners.get("neigh_table")?.policy, "advise-only");
  assert.ok(parsed.sysctls.has("net.ipv4.tcp_rmem"));
});

Deno.test("config example: UNSET_FLAGS covers exactly the value flags without a default", () => {
  const needing = configKeys().filter((k) =>
    k.value.type !== "boolean" && k.defaultValue === undefined
  )
    .map((k) => k.attribute).sort();
  assert.deepEqual(Object.keys(UNSET_FLAGS).sort(), needing);
});

Deno.test("config example: `bpfpilot config example` prints it and `config check` accepts it", () => {
  const printed = spawnSync(LAUNCHER, ["config", "example"], { encoding: "utf8" });
  assert.equal(printed.status, 0, printed.stderr);
  assert.equal(printed.stdout, exampleConfig());
  const dir = mkdtempSync(join(tmpdir(), "bpfp-example-"));
  try {
    const file = join(dir, "bpfpilot.conf");
    writeFileSync(file, printed.stdout, { mode: 0o644 });
    const check = spawnSync(LAUNCHER, ["config", "check", file], { encoding: "utf8" });
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /valid \(0 setting\(s\)/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
