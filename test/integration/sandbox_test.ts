/**
 * The confined test environment (test/support/sandbox.ts) for real: a host-wide tunable changed
 * inside it (as a --netns daemon's net_buffer changes netdev_budget) is put back when it ends,
 * whether the body passes or throws; its daemons are killed and its namespaces, cgroup and state
 * directories removed; the body's own error is the one reported.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { IS_ROOT } from "../support/kernel.ts";
import { withHostSysctls } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import { readSysctlText, writeSysctlText } from "../../src/kernel/sysctl.ts";

const BUDGET = "net.core.netdev_budget";

const raiseBudget = () => writeSysctlText(BUDGET, String(Number(readSysctlText(BUDGET)) + 7));

Deno.test({
  name: "sandbox: a host-wide tunable changed inside is put back when the body passes",
  ignore: !IS_ROOT,
  fn: () =>
    // withHostSysctls: put back by the test too, should the sandbox fail to.
    withHostSysctls([BUDGET], async () => {
      const before = readSysctlText(BUDGET);
      await withSandbox("sbok", () => {
        raiseBudget();
        assert.notEqual(readSysctlText(BUDGET), before);
      });
      assert.equal(readSysctlText(BUDGET), before, "netdev_budget put back");
    }),
});

Deno.test({
  name: "sandbox: a body that throws gets its daemon killed, everything removed, the host " +
    "put back, and its own error reported",
  ignore: !IS_ROOT,
  fn: () =>
    withHostSysctls([BUDGET], async () => {
      const before = readSysctlText(BUDGET);
      const made: string[] = [];
      let pid = 0;
      await assert.rejects(
        withSandbox("sbfail", async (sb) => {
          const more = sb.netns("sbfail-more");
          made.push(`/run/netns/${sb.ns.name}`, `/run/netns/${more.name}`, sb.cg.path);
          made.push(sb.state, sb.stateDir());
          made.forEach((p) => assert.ok(existsSync(p), `${p} created`));
          const d = sb.start(["--advise", "--no-control-socket"]);
          await d.waitFor(/bpfpilot started/, 60_000);
          pid = d.pid;
          raiseBudget();
          throw new Error("the body failed");
        }),
        /the body failed/,
      );
      assert.ok(pid > 0);
      assert.ok(!existsSync(`/proc/${pid}`), "the daemon is gone");
      assert.deepEqual(made.filter((p) => existsSync(p)), [], "all removed");
      assert.equal(readSysctlText(BUDGET), before, "netdev_budget put back");
    }),
});
