/**
 * Capabilities for real: the daemon re-executes itself with a bounding set of only what tuning
 * needs (src/kernel/capabilities.ts), so every thread of the running daemon holds exactly that
 * set, with no_new_privs; it still raises tcp_rmem under loopback traffic and rolls it back. The
 * same holds for `-D` (same pid, pid file, readiness) and for the bundle run by `deno run`, whose
 * command lines are unchanged; `--keep-capabilities` keeps root's.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import { isolatedRunArgs, LAUNCHER, ROOT } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import {
  CAP_CHOWN,
  capabilityNames,
  keptMask,
  parseCapabilities,
} from "../../src/kernel/capabilities.ts";

const LOW = [4096, 16384, 65536];
const STARTED = /bpfpilot started/;
const DENO = join(ROOT, "node_modules/.bin/deno");

/** Asserts every thread of `pid` holds exactly `mask` (effective, permitted, bounding). */
function assertThreadsBounded(pid: number, mask: bigint): number {
  const tasks = [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) => e.name);
  assert.ok(tasks.length >= 2, `Deno runs several threads: ${tasks}`);
  for (const tid of tasks) {
    let status: string;
    try {
      status = Deno.readTextFileSync(`/proc/${pid}/task/${tid}/status`);
    } catch {
      continue; // a thread that just ended
    }
    const caps = parseCapabilities(status);
    const show = (m: bigint) => capabilityNames(m).join(" ");
    assert.equal(show(caps.effective), show(mask), `thread ${tid} CapEff`);
    assert.equal(show(caps.permitted), show(mask), `thread ${tid} CapPrm`);
    assert.equal(show(caps.bounding), show(mask), `thread ${tid} CapBnd`);
    assert.equal(caps.inheritable, 0n, `thread ${tid} CapInh`);
    assert.equal(caps.ambient, 0n, `thread ${tid} CapAmb`);
    assert.match(status, /^NoNewPrivs:\s+1$/m, `thread ${tid} no_new_privs`);
  }
  return tasks.length;
}

function cmdline(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").slice(0, -1);
}

/** SIGKILLs the -D daemon of `state` (`pid`, else its pid file's) if it still runs. */
function killBackground(pid: number | null, state: string) {
  try {
    pid ??= Number(Deno.readTextFileSync(`${state}/bpfpilot.pid`).trim());
    // Only a process of this state directory: the pid may be gone and reused already.
    if (pid > 0 && cmdline(pid).includes(state)) Deno.kill(pid, "SIGKILL");
  } catch {
    // no pid file, or the process is gone
  }
}

Deno.test({
  name:
    "every thread of the daemon holds only the kept capabilities; it still tunes and rolls back",
  ignore: !IS_ROOT,
  async fn() {
    await withSandbox("caps", async (sb) => {
      sb.ns.setSysctl("net.ipv4.tcp_rmem", LOW);
      const args = sb.args(["-R"]);
      const daemon = sb.start(["-R"]);
      await daemon.waitFor(STARTED);
      const names = capabilityNames(keptMask()).join(" ");
      assert.ok(
        daemon.matching(new RegExp(`capabilities: kept only ${names}$`)).length === 1,
        daemon.lines.join("\n"),
      );
      // Re-executed in place: the launcher's pid, its exact command line, no marker left over.
      const argv = cmdline(daemon.pid);
      assert.deepEqual(argv.slice(-args.length), args);
      assert.equal(argv.filter((a) => a.includes("BPFPILOT_CAPS")).length, 0);
      assert.equal(Deno.readTextFileSync(`/proc/${daemon.pid}/comm`).trim(), "bpfpilot");
      assertThreadsBounded(daemon.pid, keptMask());

      sb.ns.iperf(4);
      await daemon.waitFor(/Due to need to increase .* change net\.ipv4\.tcp_rmem/);
      const grown = sb.ns.sysctl("net.ipv4.tcp_rmem");
      assert.ok(grown[2] > LOW[2], `tcp_rmem max grew: ${grown}`);
      assertThreadsBounded(daemon.pid, keptMask()); // threads started later too
      assert.equal(await daemon.stop("SIGTERM"), 0);
      assert.deepEqual(sb.ns.sysctl("net.ipv4.tcp_rmem"), LOW, "-R rolled it back");
      // (fentry is refused on this machine whatever the capabilities: see README)
      assert.deepEqual(
        daemon.matching(/Operation not permitted|EPERM|EACCES/).filter((l) => !/fentry/.test(l)),
        [],
      );
    });
  },
});

Deno.test({
  name: "--keep-capabilities keeps root's capabilities (debugging)",
  ignore: !IS_ROOT,
  async fn() {
    await withSandbox("capkeep", async (sb) => {
      const daemon = sb.start(["--keep-capabilities"]);
      await daemon.waitFor(STARTED);
      assert.ok(daemon.matching(/capabilities: all of root's kept \(--keep-capabilities\)/).length);
      const own = parseCapabilities(Deno.readTextFileSync("/proc/self/status"));
      const theirs = parseCapabilities(Deno.readTextFileSync(`/proc/${daemon.pid}/status`));
      assert.equal(theirs.effective, own.effective);
      assert.equal(theirs.bounding, own.bounding);
      assert.equal(await daemon.stop(), 0);
    });
  },
});

Deno.test({
  name: "-D: the background daemon is bounded under its own pid; pid file and readiness hold",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("capbg", async ({ ns, cg, state }) => {
      let pid: number | null = null; // 0 once it has exited
      try {
        // Output to a file: the -s child keeps it open after the parent returns.
        const log = `${state}/out.log`;
        const r = spawnSync(
          "bash",
          [
            "-c",
            `exec "$0" "$@" >"${log}" 2>&1`,
            LAUNCHER,
            ...isolatedRunArgs(ns, state, cg, ["-D", "--control-group", "nogroup"]),
          ],
          { encoding: "utf8", timeout: 90_000 },
        );
        const said = Deno.readTextFileSync(log);
        assert.equal(r.status, 0, said);
        pid = Number(/background as pid (\d+)/.exec(said)?.[1]);
        assert.ok(pid > 0, said);
        assert.equal(Deno.readTextFileSync(`${state}/bpfpilot.pid`).trim(), String(pid));
        // --control-group: CAP_CHOWN too, to give the socket to the group
        assertThreadsBounded(pid, keptMask([CAP_CHOWN]));
        assert.equal(Deno.statSync(`${state}/control.sock`).mode! & 0o777, 0o660);
        const q = spawnSync(LAUNCHER, ["query", "status", "--json", "--state-dir", state], {
          encoding: "utf8",
          timeout: 30_000,
        });
        assert.equal(q.status, 0, q.stderr);
        assert.equal(JSON.parse(q.stdout).daemon.pid, pid);
        Deno.kill(pid, "SIGTERM");
        assert.ok(
          await waitFor(
            () => {
              try {
                Deno.statSync(`/proc/${pid}`);
                return false;
              } catch {
                return true;
              }
            },
            10_000,
            50,
          ),
          "it exits on SIGTERM",
        );
        pid = 0;
      } finally {
        // No child of ours (it left for the background), so killed here by pid: read from its
        // pid file if the test failed before its output named it.
        if (pid !== 0) killBackground(pid || null, state);
      }
    }),
});

Deno.test({
  name: "the bundle run by `deno run` re-executes with its exact command line and is bounded",
  ignore: !IS_ROOT,
  async fn() {
    const built = Deno.makeTempDirSync({ prefix: "bpfp-capbundle-" });
    try {
      const bundle = join(built, "bpfpilot.js");
      execFileSync(DENO, ["run", "-A", join(ROOT, "scripts/build.ts"), "--quiet", "--out", bundle]);
      await withSandbox("capjs", async ({ ns, cg, state, spawnVia }) => {
        const args = isolatedRunArgs(ns, state, cg);
        const daemon = spawnVia(DENO, ["run", "-A", "--no-config", bundle, ...args]);
        try {
          await daemon.waitFor(STARTED, 60_000);
          assert.deepEqual(cmdline(daemon.pid).slice(1), [
            "run",
            "-A",
            "--no-config",
            bundle,
            ...args,
          ]);
          assertThreadsBounded(daemon.pid, keptMask());
        } finally {
          assert.equal(await daemon.stop(), 0, daemon.lines.join("\n"));
        }
      });
    } finally {
      Deno.removeSync(built, { recursive: true });
    }
  },
});
