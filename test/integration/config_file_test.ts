/**
 * bpfpilot.conf honoured by a real daemon under real traffic, in the test's own namespace: a
 * ceiling on tcp_rmem caps its growth (logged), `disabled` on tcp_wmem keeps it untouched, and
 * `query tunables` shows both rules. SIGHUP with a changed file lifts the wmem rule without a
 * restart (and says which changed setting needs one); SIGHUP with a broken file is logged and the
 * running configuration stays. The file lives in a temp directory; nothing of the host's changes.
 */
import assert from "node:assert/strict";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import { withSandbox } from "../support/sandbox.ts";
import { requestControl } from "../../src/daemon/control/client.ts";
import type { TunableInfo } from "../../src/daemon/control/provider.ts";
import type { DaemonProcess } from "../support/daemon.ts";

const RMEM = "net.ipv4.tcp_rmem", WMEM = "net.ipv4.tcp_wmem";
const LOW = [4096, 16384, 65536];
const CEILING = [4096, 16384, 98304];

const FIRST = `# bpfpilot.conf of config_file_test
[sysctl."${RMEM}"]
ceiling = [${CEILING.join(", ")}]

[sysctl."${WMEM}"]
policy = "disabled"

[tuner.tcp_conn]
policy = "advise-only"
`;

const SECOND = `learning-rate = 1
[sysctl."${RMEM}"]
ceiling = [${CEILING.join(", ")}]
`;

async function tunables(sock: string): Promise<Map<string, TunableInfo>> {
  const r = await requestControl({ verb: "tunables" }, { socketPath: sock });
  assert.ok(r.ok, JSON.stringify(r));
  return new Map((r.data as TunableInfo[]).filter((t) => t.netns).map((t) => [t.name, t]));
}

/** Waits for a line matching `re` after the first `from` lines. */
async function lineAfter(d: DaemonProcess, from: number, re: RegExp, ms = 15_000) {
  assert.ok(
    await waitFor(() => d.lines.slice(from).some((l) => re.test(l)), ms),
    `no line matching ${re}:\n${d.lines.slice(from).join("\n")}`,
  );
}

Deno.test({
  name: "bpfpilot.conf: ceiling and disabled honoured under traffic; SIGHUP applies a new file, " +
    "keeps the old one when broken",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("conf", async (sb) => {
      const dir = Deno.makeTempDirSync({ prefix: "bpfp-conf-" });
      const conf = `${dir}/bpfpilot.conf`;
      Deno.writeTextFileSync(conf, FIRST, { mode: 0o644 });
      try {
        sb.ns.setSysctl(RMEM, LOW);
        sb.ns.setSysctl(WMEM, LOW);
        const d = sb.start(["--config", conf, "-a", "tcp_buffer", "-a", "tcp_conn"]);
        await d.waitFor(/bpfpilot started/, 60_000);
        assert.equal(
          d.matching(/configuration file .*bpfpilot\.conf: 0 setting\(s\), 3 policy rule\(s\)/)
            .length,
          1,
          d.lines.join("\n"),
        );
        // tcp_conn changes connections, not sysctls: its policy acts at start.
        assert.equal(d.matching(/tuner tcp_conn: advising; /).length, 1, d.lines.join("\n"));
        assert.equal(d.matching(/tuner tcp_buffer: active; /).length, 1);
        const sock = `${sb.state}/control.sock`;
        let rows = await tunables(sock);
        assert.equal(rows.get(WMEM)?.policy, "disabled by bpfpilot.conf:5");
        assert.equal(rows.get(WMEM)?.managed, false);
        assert.equal(rows.get(RMEM)?.policy, "ceiling 4096 16384 98304 by bpfpilot.conf:2");

        sb.ns.iperf(4);
        await lineAfter(d, 0, /capped by bpfpilot\.conf ceiling \(4096 16384 98304, line 2\)/);
        await lineAfter(
          d,
          0,
          /not tuning 'net\.ipv4\.tcp_wmem' in .*: disabled by bpfpilot\.conf:5/,
        );
        sb.ns.iperf(2);
        assert.deepEqual(sb.ns.sysctl(RMEM), CEILING, "grown up to the ceiling, not past it");
        assert.deepEqual(sb.ns.sysctl(WMEM), LOW, "disabled: never written");
        assert.equal(d.matching(/change net\.ipv4\.tcp_wmem/).length, 0);

        // A changed file: wmem's rule is gone at once; learning-rate needs a restart.
        Deno.writeTextFileSync(conf, SECOND);
        let mark = d.lines.length;
        Deno.kill(d.pid, "SIGHUP");
        await lineAfter(d, mark, /configuration reloaded \(SIGHUP\)/);
        await lineAfter(d, mark, /learning-rate changed to 1 .*: needs a restart to take effect/);
        await lineAfter(d, mark, /\[tuner\.tcp_conn\] policy changed to tune .*needs a restart/);
        rows = await tunables(sock);
        assert.equal(rows.get(WMEM)?.policy, undefined);
        assert.equal(rows.get(WMEM)?.managed, true);
        sb.ns.iperf(4);
        await lineAfter(d, mark, /Due to .* change net\.ipv4\.tcp_wmem/);
        assert.ok(sb.ns.sysctl(WMEM)[2] > LOW[2], "tuned after the reload");

        // A broken file: logged with its line, the running configuration stays.
        Deno.writeTextFileSync(conf, `cooldwon = 1\n${SECOND}`);
        mark = d.lines.length;
        Deno.kill(d.pid, "SIGHUP");
        await lineAfter(
          d,
          mark,
          /bpfpilot\.conf:1: unknown key 'cooldwon' \(did you mean 'cooldown'\?\)/,
        );
        await lineAfter(
          d,
          mark,
          /configuration file not reloaded: the running configuration stays/,
        );
        rows = await tunables(sock);
        assert.equal(
          rows.get(RMEM)?.policy,
          "ceiling 4096 16384 98304 by bpfpilot.conf:2",
          "the old file's line",
        );
        sb.ns.iperf(2);
        assert.deepEqual(sb.ns.sysctl(RMEM), CEILING, "the ceiling still holds");
        assert.equal(await d.stop(), 0, "still running, clean exit");
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    }),
});
