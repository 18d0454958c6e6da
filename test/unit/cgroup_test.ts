import assert from "node:assert/strict";
import { parseCgroup2Mount } from "../../src/kernel/cgroup.ts";

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
