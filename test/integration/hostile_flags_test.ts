/**
 * Typos must not silently switch safety off: a wrong -c, --netns, empty strings and non-UTF-8
 * paths are usage errors (exit 2) naming the fix; an empty directory as -c gets cgroup2 mounted
 * on it, as bpftune does, and unmounted on exit; without override detection, or without a tuner named with -a, the
 * daemon refuses to start unless --allow-degraded, and the level it prints is the true one.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import { isolatedRunArgs, LAUNCHER } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import { mountOf } from "../../src/kernel/cgroup_dir.ts";

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(LAUNCHER, ["run", "--stderr", "--no-control-socket", ...args], {
    encoding: "utf8",
    timeout: 30_000,
    env: { ...Deno.env.toObject(), ...env },
  });
}

Deno.test({
  name: "run: wrong -c, --netns, empty strings and non-UTF-8 paths are usage errors (exit 2)",
  ignore: !IS_ROOT,
  fn() {
    const cases: [string[], RegExp][] = [
      [["-c", "/nonexistent-cg"], /-c \/nonexistent-cg: no such directory; give a cgroup v2/],
      [["-c", "/etc/passwd"], /-c \/etc\/passwd is not a directory/],
      [["-c", "/etc"], /-c \/etc is not a cgroup v2 directory .* and not empty/],
      [["-c", ""], /empty string/],
      [["--netns", "/etc/passwd"], /--netns \/etc\/passwd: .* is not a network namespace/],
      [["--netns", "/proc/self/ns/user"], /is not a network namespace/],
      [["--cooldown", ""], /--cooldown must be a number of seconds >= 0, not ''/],
      [["--control-socket", ""], /--control-socket is an empty string/],
      [["--state-dir", ""], /--state-dir is an empty string/],
    ];
    for (const [args, re] of cases) {
      const r = run(args);
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr, /^\s+at /m);
    }
    const bad = spawnSync(
      "sh",
      ["-c", `exec "$0" run --stderr --state-dir "$(printf '/tmp/bpfp-\\377')"`, LAUNCHER],
      { encoding: "utf8" },
    );
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /bytes that are not UTF-8/);
  },
});

/** The file system mounted exactly at `path`, or null where `path` is no mount point. */
function mountedAt(path: string): string | null {
  const mount = mountOf(path, Deno.readTextFileSync("/proc/self/mountinfo"));
  return mount?.point === path ? mount.fstype : null;
}

Deno.test({
  name: "run -c <empty dir>: cgroup2 is mounted there for override detection; on exit that " +
    "mount, and only it, goes (even when the path was swapped for another mount)",
  ignore: !IS_ROOT,
  async fn() {
    await withSandbox("cgmnt", async ({ ns, cg, state, spawn }) => {
      const top = Deno.makeTempDirSync({ prefix: "bpfp-cgmnt-" });
      const dir = `${top}/parent/cg`;
      const moved = `${top}/moved/cg`;
      Deno.mkdirSync(dir, { recursive: true });
      const mounts: string[] = []; // whatever may be left to clean up
      try {
        const args = isolatedRunArgs(ns, state, cg).map((a) => (a === cg.path ? dir : a));
        const d = spawn(args);
        try { // killed before the mounts below are cleaned up, not only at the sandbox's end
          await d.waitFor(/mounted cgroup2 on/);
          mounts.push(dir);
          assert.equal(mountedAt(dir), "cgroup2");
          await d.waitFor(/tuner sysctl: active/);
          await d.waitFor(/bpfpilot started/);
          // Whoever owns the parent moves it away and puts another mount at the same path.
          Deno.renameSync(`${top}/parent`, `${top}/moved`);
          mounts[0] = moved;
          Deno.mkdirSync(dir, { recursive: true });
          assert.equal(spawnSync("mount", ["-t", "tmpfs", "none", dir]).status, 0);
          mounts.push(dir);
          assert.equal(await d.stop(), 0);
        } finally {
          await d.stop("SIGKILL").catch(() => {});
        }
        assert.equal(mountedAt(moved), null, "the cgroup2 mount the daemon made is gone");
        assert.equal(mountedAt(dir), "tmpfs", "the mount the daemon did not make stays");
      } finally {
        for (const m of mounts.reverse()) if (mountedAt(m)) spawnSync("umount", ["-l", m]);
        Deno.removeSync(top, { recursive: true });
      }
    });
  },
});

Deno.test({
  name: "no override detection, or a tuner named with -a missing: refused unless --allow-degraded",
  ignore: !IS_ROOT,
  async fn() {
    await withSandbox("degr", async ({ ns, cg, state, start }) => {
      const refused = spawnSync(LAUNCHER, isolatedRunArgs(ns, state, cg), {
        encoding: "utf8",
        timeout: 30_000,
        env: { ...Deno.env.toObject(), BPFPILOT_FAULT_INJECT: "sysctl:load" },
      });
      assert.equal(refused.status, 1, refused.stderr);
      assert.match(
        refused.stderr,
        /refusing to start without admin-override detection .*--allow-degraded/,
      );
      const named = spawnSync(LAUNCHER, isolatedRunArgs(ns, state, cg, ["-a", "tcp_buffer"]), {
        encoding: "utf8",
        timeout: 30_000,
        env: { ...Deno.env.toObject(), BPFPILOT_FAULT_INJECT: "tcp_buffer:load" },
      });
      assert.equal(named.status, 1, named.stderr);
      assert.match(named.stderr, /refusing to start without tuner tcp_buffer/);

      const d = start(["--allow-degraded"], { BPFPILOT_FAULT_INJECT: "sysctl:load" });
      const started = await d.waitFor(/bpfpilot started/);
      assert.match(started, /support level legacy/, "not 'full' without override detection");
      assert.equal(await d.stop(), 0);
    });
  },
});
