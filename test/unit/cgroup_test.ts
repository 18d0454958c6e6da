import assert from "node:assert/strict";
import {
  ownCgroup,
  parseCgroup2Mount,
  STALE_PROBE_CGROUP_MS,
  sweepStaleProbeCgroups,
} from "../../src/kernel/cgroup.ts";

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

Deno.test("sweepStaleProbeCgroups: a dead process's old, empty probe cgroup goes; nothing else", () => {
  const root = Deno.makeTempDirSync({ prefix: "bpfp-cgsweep-" });
  try {
    const dirs = [
      "bpfpilot-probe-111", // dead, old, empty: removed
      "bpfpilot-probe-222", // alive
      `bpfpilot-probe-${Deno.pid}`, // ours
      "bpfpilot-probe-333", // dead but holds something (a populated cgroup cannot be rmdir'ed)
      "bpfpilot-probe-0",
      "bpfpilot-probe-12x",
      "bpfpilot-probe-",
      "other-111",
    ];
    for (const d of dirs) Deno.mkdirSync(`${root}/${d}`);
    Deno.writeTextFileSync(`${root}/bpfpilot-probe-333/cgroup.procs`, "");
    Deno.writeTextFileSync(`${root}/bpfpilot-probe-444`, ""); // a file, not a cgroup
    const alive = (pid: number) => pid === 222;
    const later = Date.now() + STALE_PROBE_CGROUP_MS + 60_000;
    // Young: a probe in another PID namespace may still be using it.
    assert.deepEqual(sweepStaleProbeCgroups(root, "bpfpilot-probe-", Date.now(), alive), []);
    assert.deepEqual(sweepStaleProbeCgroups(root, "bpfpilot-probe-", later, alive), [
      `${root}/bpfpilot-probe-111`,
    ]);
    const left = [...Deno.readDirSync(root)].map((e) => e.name).sort();
    assert.deepEqual(
      left,
      [...dirs.filter((d) => d !== "bpfpilot-probe-111"), "bpfpilot-probe-444"].sort(),
    );
    // A root that cannot be listed is nothing to sweep.
    assert.deepEqual(sweepStaleProbeCgroups(`${root}/missing`, "bpfpilot-probe-", later), []);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
