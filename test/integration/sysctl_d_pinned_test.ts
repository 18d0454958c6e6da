/**
 * Boot-time values respected by a real daemon: a sysctl a sysctl.d file sets is not tuned under
 * traffic, `query tunables` says which file pins it, and after the file goes away a SIGHUP makes
 * the daemon re-read sysctl.d and tune it, without a restart. The daemon runs inside the test's
 * network namespace (so that namespace is its own, as the host's is at boot) and reads sysctl.d
 * under a temp root (BPFPILOT_SYSCTL_D_ROOT).
 */
import assert from "node:assert/strict";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import { LAUNCHER } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import { requestControl } from "../../src/daemon/control/client.ts";
import type { TunableInfo } from "../../src/daemon/control/provider.ts";

const RMEM = "net.ipv4.tcp_rmem";
const LOW = [4096, 16384, 65536];
const CHANGE = /Due to need to increase .* change net\.ipv4\.tcp_rmem/;

Deno.test({
  name: "sysctl.d pins a value: not tuned, shown as pinned by its file; SIGHUP re-reads it",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("pin", async ({ ns, cg, state, spawnVia }) => {
      const root = Deno.makeTempDirSync({ prefix: "bpfp-sysctl-root-" });
      const pinFile = `${root}/etc/sysctl.d/50-admin.conf`;
      Deno.mkdirSync(`${root}/etc/sysctl.d`, { recursive: true });
      Deno.writeTextFileSync(pinFile, `# the admin's choice\n${RMEM} = ${LOW.join(" ")}\n`);
      ns.setSysctl(RMEM, LOW);
      const sock = `${state}/ctl.sock`;
      const d = spawnVia("nsenter", [
        `--net=/run/netns/${ns.name}`,
        LAUNCHER,
        "run",
        "-s",
        "--state-dir",
        state,
        "-c",
        cg.path,
        "--cooldown",
        "1",
        "--control-socket",
        sock,
        "-a",
        "tcp_buffer",
      ], { BPFPILOT_SYSCTL_D_ROOT: root });
      try {
        await d.waitFor(/bpfpilot started/, 60_000);
        assert.equal(d.matching(/boot-time sysctl settings read from 1 file/).length, 1);
        const r = await requestControl({ verb: "tunables" }, { socketPath: sock });
        assert.ok(r.ok);
        const row = (r.data as TunableInfo[]).find((t) => t.name === RMEM && !t.netns)!;
        assert.equal(row.pinnedBy, "/etc/sysctl.d/50-admin.conf:2");
        assert.equal(row.managed, false);

        ns.iperf(3);
        await new Promise((res) => setTimeout(res, 1000));
        assert.deepEqual(ns.sysctl(RMEM), LOW, "pinned: left alone under traffic");
        assert.deepEqual(d.matching(CHANGE), []);
        assert.equal(
          d.matching(
            /not tuning 'net\.ipv4\.tcp_rmem' in global ns: pinned at boot by \/etc\/sysctl\.d\/50-admin\.conf:2/,
          )
            .length,
          1,
          d.lines.join("\n"),
        );

        Deno.removeSync(pinFile);
        Deno.kill(d.pid, "SIGHUP");
        await d.waitFor(/configuration reloaded \(SIGHUP\)/);
        ns.iperf(3);
        assert.ok(
          await waitFor(() => d.matching(CHANGE).length > 0, 15_000),
          `tuned after the reload:\n${d.lines.slice(-10).join("\n")}`,
        );
        assert.ok(ns.sysctl(RMEM)[2] > LOW[2]);
        assert.equal(await d.stop(), 0, "state kept across the reload; clean exit");
      } finally {
        Deno.removeSync(root, { recursive: true });
      }
    }),
});
