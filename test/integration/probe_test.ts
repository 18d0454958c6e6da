/**
 * The probe against the real kernel: a trivial program proves an attach point works, and the
 * tuner's own chosen program is then load-tested too; one the verifier refuses is marked failed
 * with its reason and the hook moves on to the next candidate (the 5.10 cgroup/sysctl case).
 */
import assert from "node:assert/strict";
import selftestBad from "../../dist/bpf/selftest_bad.bpf.o" with { type: "bytes" };
import { probeKernel, type TunerHooks } from "../../src/kernel/probe.ts";
import { cgroup2Root, makeChildCgroup } from "../../src/kernel/cgroup.ts";
import { IS_ROOT } from "../support/kernel.ts";

Deno.test({
  name: "probe: a chosen program the verifier refuses is marked failed; the next candidate wins",
  ignore: !IS_ROOT,
  fn() {
    const tuners: TunerHooks[] = [{
      tuner: "t",
      object: selftestBad,
      hooks: [{
        name: "exec",
        description: "",
        candidates: [
          { kind: "tp_btf", target: "sched_process_exec", program: "bpfp_bad_unchecked" },
          { kind: "tp_btf", target: "sched_process_exec", program: "bpfp_bad_fixed" },
        ],
      }],
    }];
    const r = probeKernel(tuners, { cacheFile: null });
    const [c] = r.choices;
    assert.equal(c.program, "bpfp_bad_fixed");
    assert.equal(c.chosen, "tp_btf");
    assert.equal(c.tried[0].ok, false);
    assert.match(c.tried[0].reason, /bpfp_bad_unchecked does not load: .*verifier/);
    assert.equal(c.tried[1].ok, true);
    assert.equal(r.level, "legacy", "a hook fell back");
  },
});

Deno.test({
  name: "probe: without a writable cgroup root the cgroup hooks are probed in the own cgroup",
  ignore: !IS_ROOT,
  async fn() {
    // A 0555 cgroup2 root without CAP_DAC_OVERRIDE refuses the probe's child cgroup, as a
    // read-only tree (systemd's ProtectControlGroups=yes) does: the cgroup/sysctl and sockops
    // probes must still attach (in the process's own child cgroup) instead of failing.
    const root = cgroup2Root()!;
    const own = makeChildCgroup(root, `bpfp-test-owncg-${Deno.pid}`);
    try {
      const script = `echo $$ > ${own.path}/cgroup.procs && exec setpriv ` +
        `--bounding-set=-dac_override --inh-caps=-dac_override -- scripts/bpfpilot support --json`;
      const out = await new Deno.Command("sh", { args: ["-c", script], stderr: "piped" }).output();
      const text = new TextDecoder().decode(out.stdout);
      const r = JSON.parse(text) as { kinds: { kind: string; ok: boolean; reason: string }[] };
      for (const kind of ["cgroup/sysctl", "cgroup/sockops"]) {
        const k = r.kinds.find((x) => x.kind === kind);
        assert.ok(k?.ok, `${kind}: ${JSON.stringify(k)}`);
      }
      assert.deepEqual([...Deno.readDirSync(own.path)].filter((e) => e.isDirectory), []);
    } finally {
      own.remove();
    }
  },
});
