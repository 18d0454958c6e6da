/**
 * bpfpilot as a drop-in for bpftune: a bpftune unit's ExecStart line with only the program name
 * changed starts it with the same meaning; bpftune's spellings (--learning_rate, -l, -p, -P, an
 * -a list naming tuners bpfpilot lacks) are accepted; and the smaller operator fixes (all tuners
 * disabled, `help`, a non-root `rollback --dry-run`).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import { isolatedRunArgs, LAUNCHER, ROOT } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import { cgroup2Root } from "../../src/kernel/cgroup.ts";
import { Journal } from "../../src/daemon/journal.ts";
import { TUNERS } from "../../src/tuners/registry.ts";

/** bpftune's own unit (bpftune.service): `ExecStart=/usr/sbin/bpftune -s`. */
const BPFTUNE_EXECSTART = "/usr/sbin/bpftune -s";

Deno.test({
  name: "a bpftune unit's ExecStart line, renamed to bpfpilot, starts it with the same meaning",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("unit", async ({ ns, cg, spawnVia }) => {
      const root = cgroup2Root()!;
      const line = BPFTUNE_EXECSTART.replace("/usr/sbin/bpftune", LAUNCHER).split(" ");
      // The unchanged line would tune this machine with the default state directory and the root
      // cgroup. In a private mount namespace, /var/lib and /run are fresh tmpfs, the cgroup2 root is
      // the test's child cgroup bound over it, and the network namespace is the test's own.
      const sandbox = [
        "set -e",
        `exec 3</run/netns/${ns.name}`,
        "mount -t tmpfs bpfpilot-test /var/lib",
        "mount -t tmpfs bpfpilot-test /run",
        `mount --bind '${cg.path}' '${root}'`,
        'exec nsenter --net=/proc/self/fd/3 "$@"',
      ].join("\n");
      const d = spawnVia("unshare", ["-m", "sh", "-c", sandbox, "sh", ...line]);
      const started = await d.waitFor(/bpfpilot started|could not|error/, 60_000);
      assert.match(
        started,
        /bpfpilot started \([3-9] tuners, support level full/,
        d.lines.join("\n"),
      );
      assert.ok(d.lines.every((l) => l.startsWith("bpfpilot")), "-s: every line on stderr");
      const attached = spawnSync("bpftool", ["cgroup", "show", cg.path], { encoding: "utf8" });
      assert.match(attached.stdout, /sysctl\s+.*bpfp_sy_write/, "the admin-write detector is on");
      assert.equal(await d.stop("SIGTERM"), 0, "SIGTERM ends it with 0, as bpftune");
      assert.equal(d.matching(/# Events: tuner 'tcp_buffer'/).length, 1, "the exit summary");
    }),
});

Deno.test({
  name: "bpftune spellings: --learning_rate, -l, -p, and -a naming a tuner bpfpilot lacks",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("spell", async ({ ns, cg, state, start }) => {
      // An admin write remembered from an earlier run: bpftune's semantics forget it.
      const j = Journal.open(state);
      j.markOverride({
        netns: "global",
        sysctl: "net.ipv4.tcp_rmem",
        tuner: "tcp_buffer",
        pid: 7,
        comm: "sysctl",
      });
      j.close();
      const d = start([
        "--overrides",
        "session",
        "-a",
        "tcp_buffer_tuner.so",
        "-a",
        "nosuch_tuner.so",
        "--learning_rate",
        "2",
        "-l",
        "/usr/local/lib64/bpftune",
        "-p",
        "0",
      ]);
      await d.waitFor(/bpfpilot started \(2 tuners/);
      assert.equal(d.matching(/-a nosuch: bpfpilot has no such tuner .*; ignored/).length, 1);
      assert.equal(
        d.matching(/-l\/--libdir .* ignored: bpfpilot's tuners are built in/).length,
        1,
      );
      assert.equal(d.matching(/-p\/--port 0 ignored: .*UNIX socket/).length, 1);
      assert.equal(d.matching(/tuner sysctl runs although -a did not name it/).length, 1);
      assert.equal(d.matching(/forgot 1 admin override\(s\) from an earlier run/).length, 1);
      assert.deepEqual(d.matching(/not tuning net\.ipv4\.tcp_rmem/), []);
      assert.equal(await d.stop(), 0);
      const none = spawnSync(LAUNCHER, isolatedRunArgs(ns, state, cg, ["-a", "nosuch"]), {
        encoding: "utf8",
        timeout: 60_000,
      });
      assert.equal(none.status, 1);
      assert.match(none.stderr, /none of the tuners given with -a \(nosuch\) exists/);
      // Every tuner that tunes (all but the always-on admin-override detector) switched off.
      const tuning = TUNERS.filter((t) => !t.alwaysOn).map((t) => t.name);
      const off = spawnSync(
        LAUNCHER,
        isolatedRunArgs(ns, state, cg, tuning.flatMap((t) => ["--disable", t])),
        { encoding: "utf8", timeout: 60_000 },
      );
      assert.equal(off.status, 1, off.stderr);
      assert.match(off.stderr, /every tuner that tunes is switched off \(tcp_buffer, /);
      assert.doesNotMatch(off.stderr, /kernel/, "not blamed on the kernel");
    }),
});

Deno.test("-P lists the built-in tuners; bpfpilot help prints the usage and exits 0", () => {
  const p = spawnSync(LAUNCHER, ["-P"], { encoding: "utf8" });
  assert.equal(p.status, 0, p.stderr);
  assert.deepEqual(p.stdout.trim().split("\n"), TUNERS.map((t) => t.name));
  assert.match(p.stderr, /no plugin directory/);
  const help = spawnSync(LAUNCHER, ["help"], { encoding: "utf8" });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^Usage: bpfpilot /);
  const sub = spawnSync(LAUNCHER, ["help", "rollback"], { encoding: "utf8" });
  assert.match(sub.stdout, /^Usage: bpfpilot rollback/);
});

Deno.test({
  name: "a non-root rollback --dry-run names the real reason it needs root",
  ignore: !IS_ROOT, // root is needed to switch to an unprivileged user
  fn() {
    const denoDir = Deno.makeTempDirSync({ prefix: "bpfp-denodir-" });
    Deno.chmodSync(denoDir, 0o777);
    try {
      const r = spawnSync("setpriv", [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        `${ROOT}/node_modules/.bin/deno`,
        "run",
        "-A",
        "--no-config",
        `${ROOT}/dist/bpfpilot.js`,
        "rollback",
        "--dry-run",
      ], { encoding: "utf8", env: { ...Deno.env.toObject(), DENO_DIR: denoDir } });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /rollback --dry-run needs root \(it reads the journal in \/var\/lib/);
      assert.doesNotMatch(r.stderr, /BPF/);
    } finally {
      Deno.removeSync(denoDir, { recursive: true });
    }
  },
});
