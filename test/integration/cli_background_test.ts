/**
 * `-D`: the parent returns only once the background daemon runs (exit 0, pid file written,
 * `query status` names it) or has failed (exit 1 with the child's own start error), and the child
 * keeps logging where -s asked (the caller's stderr), as bpftune's daemon(1,1) does.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import { Journal } from "../../src/daemon/journal.ts";
import { isolatedRunArgs, LAUNCHER } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";

/** Runs the launcher with stdout and stderr in files (a -s child keeps them open after). */
function launch(args: string[], dir: string) {
  const out = `${dir}/out.log`, err = `${dir}/err.log`;
  const started = performance.now();
  const r = spawnSync("bash", ["-c", `exec "$0" "$@" >"${out}" 2>"${err}"`, LAUNCHER, ...args], {
    encoding: "utf8",
    timeout: 90_000,
  });
  return {
    status: r.status,
    ms: performance.now() - started,
    stderr: () => Deno.readTextFileSync(err),
  };
}

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "-D returns once the daemon runs: pid file, query status names it, it keeps logging",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("bg", async ({ ns, cg, state }) => {
      const logs = Deno.makeTempDirSync({ prefix: "bpfpilot-bg-" });
      let pid = 0;
      try {
        const r = launch(isolatedRunArgs(ns, state, cg, ["-D"]), logs);
        assert.equal(r.status, 0, r.stderr());
        pid = Number(/background as pid (\d+)/.exec(r.stderr())?.[1]);
        assert.ok(pid > 0, r.stderr());
        // Ready means ready: no polling needed for the lock, the pid file or the start line.
        assert.equal(Journal.daemonPid(state), pid, "it holds its state directory");
        assert.equal(Deno.readTextFileSync(`${state}/bpfpilot.pid`).trim(), String(pid));
        assert.match(r.stderr(), new RegExp(`pid file ${state}/bpfpilot.pid`));
        assert.match(r.stderr(), /bpfpilot started/, "-s: the child logs to the caller's stderr");
        assert.equal(Deno.readTextFileSync(`/proc/${pid}/comm`).trim(), "bpfpilot");
        // Two daemons are told apart by their command line (state directory).
        assert.match(Deno.readTextFileSync(`/proc/${pid}/cmdline`), new RegExp(state));

        const q = spawnSync(LAUNCHER, ["query", "status", "--json", "--state-dir", state], {
          encoding: "utf8",
          timeout: 30_000,
        });
        assert.equal(q.status, 0, q.stderr);
        const daemon = JSON.parse(q.stdout).daemon;
        assert.equal(daemon.pid, pid);
        assert.equal(daemon.stateDir, state);
        assert.equal(daemon.pidFile, `${state}/bpfpilot.pid`);
        assert.ok(daemon.uptimeSeconds >= 0 && daemon.uptimeSeconds < 120);
        const text = spawnSync(LAUNCHER, ["-q", "status", "--state-dir", state], {
          encoding: "utf8",
          timeout: 30_000,
        });
        assert.match(text.stdout, new RegExp(`pid ${pid}, up \\d+s`));

        Deno.kill(pid, "SIGTERM");
        assert.ok(await waitFor(() => !alive(pid), 10_000, 50), "it exits on SIGTERM");
        pid = 0;
        assert.throws(() => Deno.statSync(`${state}/bpfpilot.pid`), "pid file removed on exit");
        assert.match(r.stderr(), /bpfpilot stopped/, "still logging to the caller's stderr");
      } finally {
        if (pid) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch {
            // gone
          }
        }
        Deno.removeSync(logs, { recursive: true });
      }
    }),
});

Deno.test({
  name: "-D exits 1 with the child's start error (with and without -s), and leaves nothing running",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("bgfail", ({ ns, cg, state }) => {
      const logs = Deno.makeTempDirSync({ prefix: "bpfpilot-bg-" });
      try {
        // A corrupt journal: the child fails after the parent has handed over.
        Deno.writeTextFileSync(`${state}/state.json`, "{ not json");
        for (const quiet of [false, true]) {
          const args = isolatedRunArgs(ns, state, cg, ["-D"]).filter((a) =>
            !(quiet && a === "--stderr")
          );
          const r = launch(args, logs);
          assert.equal(r.status, 1, r.stderr());
          const err = r.stderr();
          assert.match(err, /the background daemon could not start: .*state/);
          assert.equal(
            err.split("\n").filter((l) => /state\.json/.test(l)).length,
            1,
            `the start error once, not twice:\n${err}`,
          );
          assert.doesNotMatch(err, /running in the background/);
          assert.doesNotMatch(err, /^\s+at /m);
          assert.equal(Journal.daemonPid(state), null, "no daemon left running");
          assert.ok(r.ms < 60_000);
        }
      } finally {
        Deno.removeSync(logs, { recursive: true });
      }
      return Promise.resolve();
    }),
});
