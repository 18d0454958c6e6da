/**
 * The harness's host-sysctl guard (test/support/host_sysctl_guard.ts, preloaded by scripts/test)
 * for real: a child `deno test` with the guard runs one test that leaves the host's
 * netdev_budget raised and one that puts it back. Only the first fails, naming the sysctl and
 * both values, and the guard has put the host's value back by the time the child exits.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { IS_ROOT } from "../support/kernel.ts";
import { ROOT, tempStateDir, withHostSysctls } from "../support/daemon.ts";
import { readSysctlText } from "../../src/kernel/sysctl.ts";

const BUDGET = "net.core.netdev_budget";
const DENO = join(ROOT, "node_modules/.bin/deno");

const CHILD_TESTS = `
const path = "/proc/sys/net/core/netdev_budget";
const raise = () => Deno.writeTextFileSync(path, String(Number(Deno.readTextFileSync(path)) + 7));
Deno.test("leaks", () => raise());
Deno.test("restores", () => {
  const was = Deno.readTextFileSync(path);
  raise();
  Deno.writeTextFileSync(path, was);
});
`;

Deno.test({
  name: "host sysctl guard: a test leaving a tuner's host sysctl changed fails naming it; " +
    "the value is put back",
  ignore: !IS_ROOT,
  async fn() {
    const dir = tempStateDir();
    try {
      await withHostSysctls([BUDGET], async () => {
        const before = readSysctlText(BUDGET);
        const file = join(dir.dir, "leak_test.ts");
        Deno.writeTextFileSync(file, CHILD_TESTS);
        const out = await new Deno.Command(DENO, {
          args: [
            ...["test", "-A", "--config", join(ROOT, "deno.json")],
            ...["--preload", join(ROOT, "test/support/host_sysctl_guard.ts"), file],
          ],
          cwd: dir.dir,
          env: { NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
        assert.notEqual(out.code, 0, text);
        assert.match(text, /leaks \.\.\. FAILED/, text);
        assert.match(text, /restores \.\.\. ok/, text);
        const raised = Number(before) + 7;
        assert.ok(
          text.includes(`left host sysctls changed: ${BUDGET} '${before}' -> '${raised}'`),
          text,
        );
        assert.equal(readSysctlText(BUDGET), before, "the guard put the value back");
      });
    } finally {
      dir.remove();
    }
  },
});
