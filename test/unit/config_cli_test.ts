/**
 * `bpfpilot config check` and `config show` as a user runs them: exit 0 valid, 1 problems (each
 * with its line, on stderr), 2 a usage error; --json for scripts; show puts flags over the file.
 * Files live in a temp directory.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";

const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
const DENO = join(ROOT, "node_modules/.bin/deno");
const dir = mkdtempSync(join(tmpdir(), "bpfp-config-cli-"));
chmodSync(dir, 0o700);
addEventListener("unload", () => rmSync(dir, { recursive: true, force: true }));

function bpfpilot(...args: string[]) {
  const r = spawnSync(DENO, ["run", "-A", join(ROOT, "src/main.ts"), ...args], {
    encoding: "utf8",
    env: { ...Deno.env.toObject(), NO_COLOR: "1" },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o644 });
  return path;
}

Deno.test("config check: a valid file exits 0, problems exit 1 with their lines, usage exits 2", () => {
  const good = file(
    "good.conf",
    'cooldown = 10\n[sysctl."net.ipv4.tcp_rmem"]\nceiling = 8388608\n',
  );
  const ok = bpfpilot("config", "check", good);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /good\.conf: valid \(1 setting\(s\), 1 policy rule\(s\)\)/);

  const bad = file("bad.conf", "# x\ncooldwon = 10\n[tuner.tcp_buffer]\npolicy = 3\n");
  const r = bpfpilot("config", "check", bad);
  assert.equal(r.status, 1);
  assert.deepEqual(r.stderr.trim().split("\n"), [
    `${bad}:2: unknown key 'cooldwon' (did you mean 'cooldown'?)`,
    `${bad}:4: tuner.tcp_buffer.policy: policy must be one of "tune", "advise-only", "disabled", ` +
    "not an integer",
    `${bad}: 2 problem(s)`,
  ]);
  const json = bpfpilot("config", "check", bad, "--json");
  assert.equal(json.status, 1);
  const parsed = JSON.parse(json.stdout);
  assert.equal(parsed.valid, false);
  assert.deepEqual(parsed.problems.map((p: { line: number }) => p.line), [2, 4]);

  const missing = bpfpilot("config", "check", join(dir, "none.conf"));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /none\.conf does not exist/);
  assert.equal(bpfpilot("config", "check", "--bogus").status, 2);
  assert.equal(bpfpilot("config", "frobnicate").status, 2);
});

Deno.test("config show: flags over the file over the defaults, as TOML or JSON", () => {
  const conf = file(
    "show.conf",
    'learning-rate = 1\ncooldown = 9\n[tuner.neigh_table]\npolicy = "disabled"\n',
  );
  const r = bpfpilot("config", "show", "--config", conf, "-r", "3", "--json");
  assert.equal(r.status, 0, r.stderr);
  const e = JSON.parse(r.stdout);
  const setting = (k: string) => e.settings.find((s: { key: string }) => s.key === k);
  assert.deepEqual(setting("learning-rate"), { key: "learning-rate", value: "3", source: "flag" });
  assert.deepEqual(setting("cooldown"), { key: "cooldown", value: "9", source: "file" });
  assert.deepEqual(setting("overrides"), {
    key: "overrides",
    value: "persistent",
    source: "default",
  });
  assert.deepEqual(e.tuners, { neigh_table: { policy: "disabled" } });
  const text = bpfpilot("config", "show", "--config", conf);
  assert.match(text.stdout, /^cooldown = "9" {3}# from the file$/m);
  // The text form is itself a valid configuration file.
  const again = file("again.conf", text.stdout);
  assert.equal(bpfpilot("config", "check", again).status, 0);
  const broken = bpfpilot("config", "show", "--config", file("b.conf", "x = 1\n"));
  assert.equal(broken.status, 1);
  assert.match(broken.stderr, /b\.conf:1: unknown key 'x'/);
});

Deno.test({
  name: "run refuses to start with an unsafe, broken or missing --config (before any BPF)",
  ignore: Deno.uid() !== 0,
  fn() {
    // If the refusal ever failed, the injected fault stops start-up right after the journal step.
    const run = (conf: string) =>
      spawnSync(DENO, [
        "run",
        "-A",
        join(ROOT, "src/main.ts"),
        "run",
        "-s",
        "--config",
        conf,
        "--state-dir",
        join(dir, "state"),
        "--no-control-socket",
      ], {
        encoding: "utf8",
        env: { ...Deno.env.toObject(), NO_COLOR: "1", BPFPILOT_FAULT_INJECT: "start:journal" },
      });
    const refused = (conf: string): string => {
      const r = run(conf);
      assert.equal(r.status, 1, r.stderr);
      assert.doesNotMatch(r.stderr + r.stdout, /fault injected/, "refused before start-up began");
      return r.stderr;
    };
    const open = file("open.conf", "advise = true\n");
    chmodSync(open, 0o664);
    let err = refused(open);
    assert.match(err, /refusing configuration file .*open\.conf: it is writable by its group/);
    assert.match(err, /run: chmod go-w /);
    err = refused(file("typo.conf", "\nadvise = true\nrolback = true\n"));
    assert.match(err, /typo\.conf:3: unknown key 'rolback' \(did you mean 'rollback'\?\)/);
    assert.match(err, /or start with --no-config/);
    err = refused(join(dir, "absent.conf"));
    assert.match(err, /configuration file .*absent\.conf does not exist/);
  },
});
