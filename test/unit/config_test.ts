/**
 * bpfpilot.conf: every run flag has a key (or a reason not to), problems come with their line and
 * a suggestion, flags override the file, and a file another account could have written is
 * refused. The policy's effect on proposals is in applier_test.ts.
 */
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { Command } from "@commander-js/extra-typings";
import { configKeys, FLAG_ONLY, runFlagAttributes } from "../../src/config/options.ts";
import { parseConfig } from "../../src/config/parse.ts";
import { ConfigFileError, readConfigText } from "../../src/config/file.ts";
import { mergeSettings, selectConfig } from "../../src/config/effective.ts";
import { addRunOptions, type RunFlags } from "../../src/cli/run_options.ts";
import { ConfigPolicy, startTimePolicy } from "../../src/daemon/config_policy.ts";
import { reloadConfig } from "../../src/config/reload.ts";
import { TUNERS } from "../../src/tuners/registry.ts";
import { recordingLog } from "../support/fake_context.ts";
import { querySocket } from "../../src/cli/main.ts";

const problems = (text: string) =>
  parseConfig(text, TUNERS).problems.map((p) => `${p.line}: ${p.message}`);

Deno.test("every run flag is a config key or listed as flag-only with a reason", () => {
  const keyed = new Set(configKeys().map((k) => k.attribute));
  for (const attr of runFlagAttributes()) {
    assert.ok(
      keyed.has(attr) || (attr in FLAG_ONLY && FLAG_ONLY[attr].length > 10),
      `run flag '${attr}' has no configuration key: add one or list it in FLAG_ONLY`,
    );
  }
  for (const attr of Object.keys(FLAG_ONLY)) {
    assert.ok(runFlagAttributes().includes(attr), `FLAG_ONLY names '${attr}', not a run flag`);
  }
  const keys = configKeys().map((k) => k.key);
  for (const k of ["learning-rate", "cooldown", "state-dir", "control-socket", "overrides"]) {
    assert.ok(keys.includes(k), k);
  }
  const socket = configKeys().find((k) => k.key === "control-socket")!;
  assert.deepEqual(socket.value, { type: "string", choices: undefined, negatable: true });
});

Deno.test("a valid file gives settings as the flags would, and the policy", () => {
  const c = parseConfig(
    [
      "# comment",
      "learning-rate = 2",
      "cooldown = 2.5",
      'disable = ["route_table_tuner.so"]',
      "control-socket = false",
      'overrides = "session"',
      "advise = true",
      "",
      "[tuner.neigh_table]",
      'policy = "advise-only"',
      "",
      "[sysctl.'net.ipv4.tcp_wmem']",
      "ceiling = [4096, 65536, 8388608]",
      '[sysctl."net.core.rmem_max"]',
      'policy = "disabled"',
    ].join("\n"),
    TUNERS,
  );
  assert.deepEqual(c.problems, []);
  assert.deepEqual(c.settings, {
    learningRate: "2",
    cooldown: "2.5",
    disable: ["route_table_tuner.so"],
    controlSocket: false,
    overrides: "session",
    advise: true,
  });
  assert.equal(c.lines.cooldown, 3);
  assert.deepEqual(c.tuners.get("neigh_table"), { policy: "advise-only", line: 9 });
  assert.deepEqual(c.sysctls.get("net.ipv4.tcp_wmem"), {
    policy: "tune",
    ceiling: [4096, 65536, 8388608],
    line: 12,
  });
  assert.equal(c.sysctls.get("net.core.rmem_max")?.policy, "disabled");
});

Deno.test("problems: line numbers, typos with a suggestion, wrong types, domains", () => {
  assert.deepEqual(problems("learning-rate = 2\n\ncooldwon = 5\nadvise = 'yes'\n"), [
    "3: unknown key 'cooldwon' (did you mean 'cooldown'?)",
    "4: advise: must be true or false, not a string",
  ]);
  const [rate] = problems("\nlearning-rate = 9\n");
  assert.match(
    rate,
    /^2: learning-rate: invalid learning rate "9": use a whole number from 0 to 4/,
  );
  assert.deepEqual(problems('overrides = "forever"'), [
    "1: overrides: 'forever' is not one of 'persistent', 'session'",
  ]);
  assert.deepEqual(problems("cooldown = -1"), [
    "1: cooldown: must be a number of seconds >= 0, not '-1'",
  ]);
  assert.deepEqual(problems('state-dir = "var/lib/x"'), [
    "1: state-dir: 'var/lib/x' is not an absolute path",
  ]);
  assert.deepEqual(problems("control-socket = true"), [
    "1: control-socket: must be a string or false, not a boolean",
  ]);
  assert.match(
    problems('allow = ["tcp_bufer"]')[0],
    /^1: allow: unknown tuner 'tcp_bufer' \(did you mean 'tcp_buffer'\?\)/,
  );
  assert.match(
    problems('a = 1\n[tuner.neigh]\npolicy = "off"\n')[0],
    /^1: unknown key 'a'/,
  );
  assert.deepEqual(problems('\n[tuner.neigh_table]\npolicy = "advise_only"\nmode = 1\n'), [
    '3: tuner.neigh_table.policy: policy must be one of "tune", "advise-only", "disabled", not ' +
    "\"advise_only\" (did you mean 'advise-only'?)",
    "4: unknown key 'mode' in [tuner.neigh_table]",
  ]);
  assert.match(
    problems("[tuner.tcp_bufer]\n")[0],
    /^1: unknown tuner 'tcp_bufer' \(did you mean 'tcp_buffer'\?\)/,
  );
  assert.match(
    problems('x = 1\n[sysctl."net.ipv4.tcp_rmen"]\nceiling = 1\n')[1],
    /^2: unknown sysctl 'net.ipv4.tcp_rmen' \(did you mean 'net.ipv4.tcp_rmem'\?\)/,
  );
  assert.deepEqual(problems('[sysctl."net.ipv4.tcp_rmem"]\n\nceiling = [0, 1, 2]\n'), [
    "3: net.ipv4.tcp_rmem: ceiling 0 is outside the values it takes (1 to 2147483647)",
  ]);
  assert.deepEqual(problems('[sysctl."net.ipv4.tcp_rmem"]\nceiling = [1, 2]\n'), [
    "2: net.ipv4.tcp_rmem: ceiling has 2 value(s) but the sysctl holds 3",
  ]);
  assert.deepEqual(problems('[sysctl."net.core.rmem_max"]\nceiling = "big"\n'), [
    "2: net.core.rmem_max: ceiling must be an integer, not a string",
  ]);
  assert.deepEqual(problems("a = 1\nb = \n"), ["2: not valid TOML: invalid value"]);
  // A key inside an inline table is reported at the line of its table.
  assert.deepEqual(problems('\nsysctl = { "net.core.rmem_max" = { ceilin = 5 } }\n'), [
    "2: unknown key 'ceilin' in [sysctl.\"net.core.rmem_max\"] (did you mean 'ceiling'?)",
  ]);
});

function flagsOf(args: string[]) {
  const cmd = addRunOptions(new Command()).exitOverride();
  cmd.parse(args, { from: "user" });
  return { flags: cmd.opts() as RunFlags, sourceOf: (a: string) => cmd.getOptionValueSource(a) };
}

Deno.test("flags override the file, the file overrides the defaults", () => {
  const file = parseConfig(
    'learning-rate = 1\ncooldown = 9\noverrides = "session"\ndisable = ["ip_frag"]\n',
    TUNERS,
  );
  const { flags, sourceOf } = flagsOf(["-r", "3", "--disable", "udp_buffer"]);
  const m = mergeSettings(flags, sourceOf, file);
  assert.equal(m.flags.learningRate, "3");
  assert.equal(m.flags.cooldown, "9");
  assert.equal(m.flags.overrides, "session", "the file beats a commander default");
  assert.deepEqual(m.flags.disable, ["udp_buffer"], "a repeated flag replaces the file's list");
  assert.equal(m.sources.learningRate, "flag");
  assert.equal(m.sources.cooldown, "file");
  assert.equal(m.sources.logFormat, "default");
  assert.equal(mergeSettings(flags, sourceOf, null).flags.overrides, "persistent");
  const noSocket = flagsOf(["--no-control-socket"]);
  const withSocket = parseConfig('control-socket = "/run/x.sock"', TUNERS);
  assert.equal(
    mergeSettings(noSocket.flags, noSocket.sourceOf, withSocket).flags.controlSocket,
    false,
  );
});

/** Runs `fn` with a fresh 0700 temp directory, removed afterwards. */
function withTempDir(fn: (dir: string) => void): void {
  const d = mkdtempSync(join(tmpdir(), "bpfp-config-"));
  chmodSync(d, 0o700);
  try {
    fn(d);
  } finally {
    rmSync(d, { recursive: true });
  }
}

Deno.test("reading: a missing default is no config, a missing --config is an error", () =>
  withTempDir((d) => {
    assert.throws(
      () => selectConfig({ config: join(d, "none.conf") }, TUNERS),
      (e) => e instanceof ConfigFileError && /does not exist/.test(e.message),
    );
    assert.equal(selectConfig({ config: false }, TUNERS), null);
  }));

Deno.test("reading: symlinks, group/other-writable files, other owners and untrusted dirs are refused", () =>
  withTempDir((d) => {
    const path = join(d, "bpfpilot.conf");
    writeFileSync(path, "advise = true\n", { mode: 0o644 });
    assert.equal(readConfigText(path, 0), "advise = true\n");
    const link = join(d, "link.conf");
    symlinkSync(path, link);
    assert.throws(() => readConfigText(link, 0), /symbolic link; give the path of the file itself/);
    chmodSync(path, 0o664);
    assert.throws(() => readConfigText(path, 0), /writable by its group \(mode 0664\).*chmod go-w/);
    chmodSync(path, 0o646);
    assert.throws(() => readConfigText(path, 0), /writable by every user/);
    chmodSync(path, 0o644);
    chownSync(path, 65534, 65534);
    assert.throws(() => readConfigText(path, 0), /owned by uid 65534.*chown root:root/);
    chownSync(path, 0, 0);
    const open = join(d, "open");
    mkdirSync(open);
    chmodSync(open, 0o777);
    writeFileSync(join(open, "x.conf"), "", { mode: 0o644 });
    assert.throws(() => readConfigText(join(open, "x.conf"), 0), /writable by every user/);
    mkdirSync(join(d, "dir.conf"));
    assert.throws(() => readConfigText(join(d, "dir.conf"), 0), /not a regular file/);
    writeFileSync(join(d, "big.conf"), "#".repeat(300 * 1024), { mode: 0o644 });
    assert.throws(() => readConfigText(join(d, "big.conf"), 0), /larger than/);
  }));

Deno.test("reload: a broken file keeps the old policy; a good one replaces it; start-only keys need a restart", () =>
  withTempDir((d) => {
    const path = join(d, "bpfpilot.conf");
    writeFileSync(path, 'cooldown = 5\n[tuner.tcp_buffer]\npolicy = "disabled"\n', { mode: 0o644 });
    const given = { config: path } as RunFlags;
    const config = selectConfig(given, TUNERS)!;
    const policy = new ConfigPolicy(config);
    const { log, lines } = recordingLog();
    const running = mergeSettings(given, () => undefined, config).flags;
    const deps = {
      given,
      sourceOf: () => undefined,
      running,
      policy,
      startRules: config,
      log,
      catalogue: TUNERS,
    };
    writeFileSync(path, "cooldwon = 1\n");
    reloadConfig(deps);
    assert.match(lines[0], /bpfpilot.conf:1: unknown key 'cooldwon'/);
    assert.match(lines.at(-1)!, /the running configuration stays in force/);
    assert.equal(policy.policyOf("tcp_buffer", "net.ipv4.tcp_rmem")?.policy, "disabled");
    lines.length = 0;
    writeFileSync(
      path,
      'cooldown = 1\n[tuner.tcp_buffer]\npolicy = "advise-only"\n[tuner.tcp_conn]\npolicy = "disabled"\n',
    );
    reloadConfig(deps);
    assert.equal(policy.policyOf("tcp_buffer", "net.ipv4.tcp_rmem")?.policy, "advise-only");
    assert.ok(
      lines.some((l) => /^W cooldown changed to 1 \(running with 5\): needs a restart/.test(l)),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) =>
        /^W \[tuner\.tcp_conn\] policy changed to disabled \(running with tune\).*needs a restart/
          .test(l)
      ),
      lines.join("\n"),
    );
    rmSync(path);
    lines.length = 0;
    reloadConfig(deps);
    assert.match(lines[0], /does not exist/);
    assert.equal(policy.policyOf("tcp_buffer", "net.ipv4.tcp_rmem")?.policy, "advise-only");
  }));

Deno.test("connection tuners' policy acts at start; the override detector takes none", () => {
  const c = parseConfig(
    '[tuner.tcp_conn]\npolicy = "advise-only"\n[tuner.udp_buffer]\npolicy = "disabled"\n',
    TUNERS,
  );
  assert.deepEqual(startTimePolicy(c, TUNERS), { disabled: [], advising: ["tcp_conn"] });
  const off = parseConfig('[tuner.tcp_conn]\npolicy = "disabled"\n', TUNERS);
  assert.deepEqual(startTimePolicy(off, TUNERS), { disabled: ["tcp_conn"], advising: [] });
  assert.match(
    problems('\n[tuner.sysctl]\npolicy = "disabled"\n')[0],
    /^2: tuner sysctl changes nothing itself .* disable = \["sysctl"\] turns it off/,
  );
});

Deno.test("query finds the daemon's socket through its configuration file; flags win", () =>
  withTempDir((d) => {
    const path = join(d, "bpfpilot.conf");
    writeFileSync(path, 'state-dir = "/var/lib/other"\n', { mode: 0o644 });
    assert.equal(querySocket({ config: path }), "/var/lib/other/control.sock");
    writeFileSync(path, 'control-socket = "/run/x/ctl.sock"\nstate-dir = "/var/lib/o"\n');
    assert.equal(querySocket({ config: path }), "/run/x/ctl.sock");
    assert.equal(querySocket({ config: path, stateDir: "/srv/s" }), "/srv/s/control.sock");
    writeFileSync(path, "cooldwon = 1\n");
    assert.equal(querySocket({ config: path }), null, "a broken file: the default socket");
    assert.equal(querySocket({ config: false }), null);
  }));
