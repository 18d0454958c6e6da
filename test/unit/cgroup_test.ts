import assert from "node:assert/strict";
import { ownCgroup, parseCgroup2Mount } from "../../src/kernel/cgroup.ts";

Deno.test("cgroup v2 root: pure v2 and hybrid layouts; none when only v1", () => {
  assert.equal(
    parseCgroup2Mount("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n"),
    "/sys/fs/cgroup",
  );
  assert.equal(
    parseCgroup2Mount(
      "tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n" +
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
    ),
    "/sys/fs/cgroup/unified",
  );
  assert.equal(parseCgroup2Mount("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"), null);
  assert.equal(parseCgroup2Mount("none /my\\040cg cgroup2 rw 0 0"), "/my cg");
});

Deno.test("ownCgroup: the v2 line's path under the root; null for the root cgroup", () => {
  const root = "/sys/fs/cgroup";
  assert.equal(
    ownCgroup(root, "0::/system.slice/bpfpilot.service\n"),
    `${root}/system.slice/bpfpilot.service`,
  );
  assert.equal(ownCgroup(root, "4:memory:/x\n0::/\n"), null);
  assert.equal(ownCgroup(root, "4:memory:/x\n"), null);
  assert.equal(ownCgroup(root, "0::/a/../..\n"), null);
});
