/**
 * The shared child cgroup (test/support/child_cgroup.ts, under the tests' TestCgroup and the
 * bench's cgroup): a wrapped program is a member from its start; killMembers then removal
 * empties it and takes it away.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { ChildCgroup } from "../support/child_cgroup.ts";
import { IS_ROOT } from "../support/kernel.ts";

Deno.test({
  name: "child cgroup: programs join before exec; killMembers, then removal takes it away",
  ignore: !IS_ROOT,
  async fn() {
    const cg = new ChildCgroup(`bpfp-test-cgshare-${Deno.pid}`);
    try {
      assert.ok(existsSync(cg.path));
      // A shell line finds itself inside already: it was moved in before its exec.
      const [sh, ...args] = cg.wrapShell("cat /proc/self/cgroup");
      const out = new TextDecoder().decode(new Deno.Command(sh, { args }).outputSync().stdout);
      const v2 = out.split("\n").find((l) => l.startsWith("0::")); // its cgroup v2 line
      assert.equal(v2, `0::${cg.path.slice(cg.path.lastIndexOf("/"))}`, out);

      const [cmd, ...rest] = cg.wrap(["sleep", "30"]);
      const child = new Deno.Command(cmd, { args: rest, stdout: "null" }).spawn();
      for (let i = 0; i < 100 && !cg.members().includes(child.pid); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(cg.members(), [child.pid], "the exec'd program is the one member");
      assert.throws(() => Deno.removeSync(cg.path), "a live member keeps it busy");
      cg.killMembers();
      assert.equal((await child.status).signal, "SIGKILL");
      await cg.removeAsync();
      assert.ok(!existsSync(cg.path));
      assert.deepEqual(cg.members(), []);
      assert.ok(cg.removeSync(), "gone already: nothing to do");
    } finally {
      cg.killMembers();
      cg.removeSync();
    }
  },
});
