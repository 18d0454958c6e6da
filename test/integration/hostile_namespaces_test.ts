/**
 * Bounded state: as `nobody`, 1,000 user+net namespaces each write their own tcp_rmem and stay
 * alive. The daemon records nothing for them and still answers `query status` in under 100 ms.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { IS_ROOT } from "../support/kernel.ts";
import { withSandbox } from "../support/sandbox.ts";
import { requestControl } from "../../src/daemon/control/client.ts";

const NAMESPACES = 1000;
const HOLD_S = 90; // ended early through the cgroup; creating 1,000 takes ~30 s

Deno.test({
  name: "1,000 unprivileged namespaces leave no records; query status stays under 100 ms",
  ignore: !IS_ROOT,
  async fn() {
    await withSandbox("nsmany", async ({ cg, state, start }) => {
      const sock = `${state}/control.sock`;
      const daemon = start(["--control-socket", sock]);
      let crowd: Deno.ChildProcess | null = null;
      try {
        await daemon.waitFor(/bpfpilot started/);
        // Each namespace lives (sleeping) until the test ends it through its cgroup.
        crowd = new Deno.Command("sh", {
          args: [
            "-c",
            `echo $$ > ${cg.path}/cgroup.procs && exec setpriv --reuid=65534 --regid=65534 ` +
            `--clear-groups sh -c 'i=0; while [ $i -lt ${NAMESPACES} ]; do unshare -Urn sh -c ` +
            `"echo 4096 16384 70000 > /proc/sys/net/ipv4/tcp_rmem; exec sleep ${HOLD_S}" & ` +
            `i=$((i+1)); done; echo started; wait'`,
          ],
          stdout: "piped",
          stderr: "null",
        }).spawn();
        const reader = crowd.stdout.pipeThrough(new TextDecoderStream()).getReader();
        assert.match((await reader.read()).value ?? "", /started/);
        reader.releaseLock();
        await new Promise((r) => setTimeout(r, 2000));
        const live = Number(
          new TextDecoder().decode(
            new Deno.Command("sh", {
              args: ["-c", `grep -c . ${cg.path}/cgroup.procs`],
              stdout: "piped",
            }).outputSync().stdout,
          ).trim(),
        );
        assert.ok(live >= NAMESPACES * 0.9, `${live} namespace holders alive`);
        const times: number[] = [];
        for (let i = 0; i < 5; i++) {
          const t0 = performance.now();
          const r = await requestControl({ verb: "status" }, { socketPath: sock });
          times.push(performance.now() - t0);
          assert.ok(r.ok);
        }
        times.sort((a, b) => a - b);
        assert.ok(times[2] < 100, `query status took ${times.map(Math.round).join(", ")} ms`);
        // No state file at all, or one without overrides: nothing recorded for their namespaces.
        const file = `${state}/state.json`;
        const overrides = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")).overrides : [];
        assert.deepEqual(overrides, [], "nothing recorded for the users' namespaces");
        assert.deepEqual(daemon.matching(/modified sysctl/), []);
        assert.equal(await daemon.stop(), 0);
      } finally {
        if (crowd) {
          Deno.writeTextFileSync(`${cg.path}/cgroup.kill`, "1");
          await crowd.status;
        }
      }
    });
  },
});
