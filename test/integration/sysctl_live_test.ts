/**
 * Live tests (root): sysctl reads on the host, writes only inside a network namespace created
 * here (restored, then the namespace deleted), the kernel rejecting bad values, the journal
 * rolling back a real write after a simulated crash, and the logger talking to a syslog socket.
 */
import assert from "node:assert/strict";
import {
  parseSysctlDump,
  parseSysctlValues,
  readSysctl,
  readSysctlText,
  SysctlError,
  sysctlPath,
  writeSysctlText,
} from "../../src/kernel/sysctl.ts";
import { createLogger } from "../../src/log/logger.ts";

const IS_ROOT = Deno.uid() === 0;
const SYSCTL_URL = new URL("../../src/kernel/sysctl.ts", import.meta.url).href;
const JOURNAL_URL = new URL("../../src/daemon/journal.ts", import.meta.url).href;
const LOGGER_URL = new URL("../../src/log/logger.ts", import.meta.url).href;

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function sysctlError(fn: () => unknown): SysctlError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SysctlError, `expected SysctlError, got ${err}`);
    return err;
  }
  assert.fail("expected a SysctlError");
}

async function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `${cmd} ${args.join(" ")} failed:\n${stderr}\n${stdout}`);
  return { stdout, stderr };
}

/** Runs a script with `deno eval` and returns the JSON it prints last. */
async function evalJson(prefix: string[], script: string, denoFlags: string[] = []) {
  const [cmd, ...args] = [...prefix, Deno.execPath(), "eval", "--no-check", ...denoFlags, script];
  const { stdout } = await run(cmd, args);
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

Deno.test({
  name: "live host: read tcp_rmem, tcp_mem, congestion control; clear errors for the rest",
  ignore: !IS_ROOT,
  fn() {
    const [min, def, max] = readSysctl("net.ipv4.tcp_rmem", { count: 3 });
    assert.ok(0 < min && min <= def && def <= max, `${min} ${def} ${max}`);
    const mem = readSysctl("net/ipv4/tcp_mem", { count: 3 });
    assert.ok(mem.every((v) => v > 0));
    const cc = readSysctlText("net.ipv4.tcp_congestion_control");
    const available = readSysctlText("net.ipv4.tcp_available_congestion_control").split(/\s+/);
    assert.ok(available.includes(cc), `${cc} not in ${available}`);

    let err = sysctlError(() => readSysctl("net.ipv4.bpfpilot_no_such_sysctl"));
    assert.equal(err.kind, "missing");
    assert.match(err.message, /this kernel has no sysctl net\.ipv4\.bpfpilot_no_such_sysctl/);
    err = sysctlError(() => readSysctl("net.ipv4.route.flush")); // mode 0200
    assert.equal(err.kind, "permission");
    assert.match(err.message, /net\.ipv4\.route\.flush cannot be read/);
    const release = readSysctlText("kernel.osrelease");
    err = sysctlError(() => writeSysctlText("kernel.osrelease", "bpfpilot")); // mode 0444
    assert.equal(err.kind, "permission");
    assert.match(err.message, /kernel\.osrelease is read-only here/);
    assert.equal(readSysctlText("kernel.osrelease"), release);
  },
});

Deno.test({
  name: "live host: every name in a real `sysctl -a` dump maps to an existing /proc/sys file",
  ignore: !IS_ROOT || !exists("/usr/sbin/sysctl"),
  async fn() {
    const { stdout } = await run("/usr/sbin/sysctl", ["-a"]);
    const dump = parseSysctlDump(stdout);
    assert.deepEqual(dump.problems, []);
    assert.ok(dump.size > 100, `only ${dump.size} sysctls`);
    const missing = [...dump.keys()].filter((name) => !exists(sysctlPath(name)));
    assert.deepEqual(missing, []);
    assert.deepEqual(
      parseSysctlValues(dump.get("net.ipv4.tcp_rmem")!, "net.ipv4.tcp_rmem", 3),
      readSysctl("net.ipv4.tcp_rmem", { count: 3 }),
    );
    assert.equal(dump.get("kernel.osrelease"), readSysctlText("kernel.osrelease"));
    if (dump.has("kernel.core_modes")) { // a multi-line value (6.x kernels)
      assert.equal(dump.get("kernel.core_modes"), readSysctlText("kernel.core_modes"));
    }
  },
});

Deno.test({
  name: "live netns: write and restore, kernel rejections, dotted interface names, crash rollback",
  ignore: !IS_ROOT || (!exists("/usr/sbin/ip") && !exists("/sbin/ip")),
  async fn() {
    const ns = `bpfp-test-${Deno.pid}`;
    const hostTtl = readSysctl("net.ipv4.ip_default_ttl");
    const hostRmem = readSysctl("net.ipv4.tcp_rmem");
    const hostCc = readSysctlText("net.ipv4.tcp_congestion_control");
    const stateDir = Deno.makeTempDirSync({ prefix: "bpfp-live-journal-" });
    const script = `
      import * as s from ${JSON.stringify(SYSCTL_URL)};
      import { Journal } from ${JSON.stringify(JOURNAL_URL)};
      const r = {};
      const fail = (fn) => {
        try { fn(); return "accepted"; } catch (e) { return { kind: e.kind, message: e.message }; }
      };
      const ttl = "net.ipv4.ip_default_ttl";
      const before = s.readSysctl(ttl, { count: 1 });
      r.before = before;
      try {
        s.writeSysctl(ttl, [before[0] + 1], { count: 1, min: 1, max: 255 });
        r.afterWrite = s.readSysctl(ttl);
        r.zero = fail(() => s.writeSysctl(ttl, [0]));
        r.big = fail(() => s.writeSysctl(ttl, [256]));
        r.afterBad = s.readSysctl(ttl);
      } finally {
        s.writeSysctl(ttl, before);
        r.restored = s.readSysctl(ttl);
      }
      const ccBefore = s.readSysctlText("net.ipv4.tcp_congestion_control");
      r.cc = fail(() => s.writeSysctlText("net.ipv4.tcp_congestion_control", "bpfp_no_such_cc"));
      r.ccUnchanged = s.readSysctlText("net.ipv4.tcp_congestion_control") === ccBefore;

      r.ifSlashed = s.readSysctl("net/ipv4/conf/br0.100/rp_filter");
      r.ifCanonical = s.readSysctl("net.ipv4.conf.br0/100.rp_filter");
      r.ifDotted = fail(() => s.readSysctl("net.ipv4.conf.br0.100.rp_filter"));

      // Journal: record, write, "crash" before recordWritten, then roll back as a new process would.
      const rmem = "net.ipv4.tcp_rmem";
      const orig = s.readSysctl(rmem, { count: 3 });
      try {
        const next = [orig[0], orig[1], orig[2] + 4096];
        Journal.open(${
      JSON.stringify(stateDir)
    }).recordOriginal("test", rmem, "tcp_buffer", orig, next);
        s.writeSysctl(rmem, next, { count: 3, max: s.INT_MAX });
        r.rmemWritten = s.readSysctl(rmem);
        const j = Journal.open(${JSON.stringify(stateDir)});
        const plan = j.planRollback((_netns, name) => s.readSysctlText(name));
        for (const step of plan.restore) {
          s.writeSysctl(step.sysctl, step.to);
          j.forget(step.netns, step.sysctl);
        }
        r.plan = plan;
        r.rmemRolledBack = s.readSysctl(rmem);
        r.rmemOrig = orig;
        r.entriesLeft = j.changedEntries().length;
      } finally {
        s.writeSysctl(rmem, orig);
      }
      console.log(JSON.stringify(r));
    `;
    await run("ip", ["netns", "add", ns]);
    try {
      await run("ip", ["-n", ns, "link", "add", "br0.100", "type", "bridge"]);
      const r = await evalJson(["ip", "netns", "exec", ns], script);

      assert.deepEqual(r.afterWrite, [r.before[0] + 1]);
      for (const bad of [r.zero, r.big]) {
        assert.equal(bad.kind, "invalid");
        assert.match(
          bad.message,
          /^the kernel rejected value "(0|256)" for net\.ipv4\.ip_default_ttl/,
        );
        assert.doesNotMatch(bad.message, /os error/);
      }
      assert.deepEqual(r.afterBad, r.afterWrite, "a rejected write changes nothing");
      assert.deepEqual(r.restored, r.before);
      assert.equal(r.cc.kind, "invalid");
      assert.match(
        r.cc.message,
        /rejected value "bpfp_no_such_cc" for net\.ipv4\.tcp_congestion_control/,
      );
      assert.equal(r.ccUnchanged, true);

      assert.equal(r.ifSlashed.length, 1);
      assert.deepEqual(r.ifCanonical, r.ifSlashed);
      assert.equal(r.ifDotted.kind, "missing");
      assert.match(r.ifDotted.message, /net\/ipv4\/conf\/br0\.100\/rp_filter/);

      assert.deepEqual(r.rmemWritten, [r.rmemOrig[0], r.rmemOrig[1], r.rmemOrig[2] + 4096]);
      assert.equal(r.plan.restore.length, 1);
      assert.deepEqual(r.plan.restore[0].to, r.rmemOrig);
      assert.deepEqual(r.rmemRolledBack, r.rmemOrig);
      assert.equal(r.entriesLeft, 0);
    } finally {
      await run("ip", ["netns", "del", ns]);
      Deno.removeSync(stateDir, { recursive: true });
    }
    assert.deepEqual(readSysctl("net.ipv4.ip_default_ttl"), hostTtl, "host untouched");
    assert.deepEqual(readSysctl("net.ipv4.tcp_rmem"), hostRmem, "host untouched");
    assert.equal(readSysctlText("net.ipv4.tcp_congestion_control"), hostCc, "host untouched");
  },
});

Deno.test({
  name: exists("/dev/log")
    ? "logger → the system's /dev/log"
    : "logger → the system's /dev/log (skipped: this machine has no /dev/log)",
  ignore: !exists("/dev/log"),
  fn() {
    const log = createLogger({ target: "syslog" });
    assert.equal(log.target, "syslog");
    log.notice(`bpfpilot live test ${crypto.randomUUID()} %n%s`);
    log.close();
  },
});

Deno.test({
  name:
    "logger → a private /dev/log in a mount namespace: glibc syslog gets literal %n, one record a line",
  ignore: !IS_ROOT || !exists("/usr/bin/unshare"),
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "bpfp-live-syslog-" });
    // In the private mount namespace, /dev is a fresh tmpfs (so /dev/log can be created without
    // touching the host) with the few real device nodes bound back in.
    const setup = [
      "set -e",
      `mkdir -p ${dir}/olddev`,
      `mount --bind /dev ${dir}/olddev`,
      "mount -t tmpfs -o mode=755 bpfp-dev /dev",
      `for d in null zero random urandom full; do touch /dev/$d; mount --bind ${dir}/olddev/$d /dev/$d; done`,
      'exec "$0" eval --no-check --unstable-net "$1"',
    ].join("\n");
    const script = `
      import { createLogger } from ${JSON.stringify(LOGGER_URL)};
      setTimeout(() => { console.log(JSON.stringify({ timeout: true })); Deno.exit(3); }, 20000);
      const conn = Deno.listenDatagram({ path: "/dev/log", transport: "unixpacket" });
      const log = createLogger({ target: "syslog" });
      log.notice("cmd '%n%n%s%x' wrote net.ipv4.tcp_rmem\\nsecond line");
      log.debug("not shown");
      log.error("err");
      log.close();
      const got = [];
      for (let i = 0; i < 3; i++) got.push(new TextDecoder().decode((await conn.receive())[0]));
      console.log(JSON.stringify({ target: log.target, pid: Deno.pid, got }));
      Deno.exit(0);
    `;
    try {
      const { stdout } = await run("unshare", [
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        setup,
        Deno.execPath(),
        script,
      ]);
      const r = JSON.parse(stdout.trim().split("\n").at(-1)!);
      assert.equal(r.target, "syslog");
      const tag = `bpfpilot\\[${r.pid}\\]: `;
      assert.match(
        r.got[0],
        new RegExp(
          `^<29>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d ${tag}cmd '%n%n%s%x' wrote net\\.ipv4\\.tcp_rmem$`,
        ),
      );
      assert.match(r.got[1], new RegExp(`^<29>.* ${tag}second line$`));
      assert.match(r.got[2], new RegExp(`^<27>.* ${tag}err$`));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
