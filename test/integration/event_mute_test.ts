/**
 * Kernel-side "don't resend" under real traffic, in the test's own namespace: with tcp_rmem and
 * tcp_wmem at the ceiling bpfpilot.conf sets for them, tcp_buffer's events for the namespace stop
 * reaching userspace while its hooks keep firing (counted as muted); a SIGHUP that lifts the
 * ceilings unmutes them: events arrive again and the buffers grow. The file lives in a temp
 * directory; the namespace's sysctls go with it.
 */
import assert from "node:assert/strict";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import { withSandbox } from "../support/sandbox.ts";
import { requestControl } from "../../src/daemon/control/client.ts";
import { findSamples, parseOpenMetrics } from "../support/openmetrics.ts";

const RMEM = "net.ipv4.tcp_rmem", WMEM = "net.ipv4.tcp_wmem";
const LOW = [4096, 16384, 65536];

const AT_CEILING = `# event_mute_test: both buffers sit at their ceiling
[sysctl."${RMEM}"]
ceiling = [${LOW.join(", ")}]

[sysctl."${WMEM}"]
ceiling = [${LOW.join(", ")}]
`;

/** tcp_buffer's events received by userspace and hook hits muted in the kernel. */
async function counters(
  sock: string,
): Promise<{ events: number; muted: number; rehandled: number }> {
  const r = await requestControl({ verb: "metrics" }, { socketPath: sock });
  assert.ok(r.ok, JSON.stringify(r));
  const families = parseOpenMetrics(r.data as string);
  const one = (name: string) => {
    const s = findSamples(families, name, { tuner: "tcp_buffer" });
    assert.equal(s.length, 1, `${name}: ${JSON.stringify(s)}`);
    return s[0].value;
  };
  return {
    events: one("bpfpilot_events_total"),
    muted: one("bpfpilot_events_muted_total"),
    rehandled: one("bpfpilot_events_rehandled_total"),
  };
}

type Sandbox = Parameters<Parameters<typeof withSandbox>[1]>[0];

/**
 * Runs `body` with tcp_buffer's daemon started in `sb`, both buffers at their bpfpilot.conf
 * ceiling; the file (in a temp dir) is removed afterwards.
 */
async function atCeiling(
  sb: Sandbox,
  body: (d: ReturnType<Sandbox["start"]>, sock: string, conf: string) => Promise<void>,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-mute-" });
  const conf = `${dir}/bpfpilot.conf`;
  Deno.writeTextFileSync(conf, AT_CEILING, { mode: 0o644 });
  try {
    sb.ns.setSysctl(RMEM, LOW);
    sb.ns.setSysctl(WMEM, LOW);
    const d = sb.start(["--config", conf, "-a", "tcp_buffer"]);
    await d.waitFor(/bpfpilot started/, 60_000);
    await body(d, `${sb.state}/control.sock`, conf);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test({
  name: "events that can change nothing (at the configured ceiling) stop at the kernel; a " +
    "SIGHUP raising the ceiling brings them back",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("mute", (sb) =>
      atCeiling(sb, async (d, sock, conf) => {
        // Every kind of buffer event seen once: each is refused (there already) and muted.
        sb.ns.iperf(3);
        await d.waitFor(/not tuning 'net\.ipv4\.tcp_(r|w)mem' in .*: capped by bpfpilot\.conf/);
        const first = await counters(sock);
        assert.ok(first.events >= 1, `events reached userspace first: ${JSON.stringify(first)}`);
        assert.ok(first.muted > 0, `later hits were muted: ${JSON.stringify(first)}`);

        // Unmuted, 3 s of traffic would bring several events per kind (one per 500 ms).
        sb.ns.iperf(3);
        const muted = await counters(sock);
        assert.ok(
          muted.events - first.events <= 1,
          `events kept arriving at the ceiling: ${JSON.stringify({ first, muted })}\n` +
            d.lines.join("\n"),
        );
        assert.ok(
          muted.muted - first.muted > 1000,
          `the hooks kept firing, counted as muted: ${JSON.stringify({ first, muted })}`,
        );
        assert.deepEqual(sb.ns.sysctl(RMEM), LOW);
        assert.deepEqual(sb.ns.sysctl(WMEM), LOW);

        // The ceilings lifted: the next hits are sent, tuned on, and the muted count stops rising.
        Deno.writeTextFileSync(conf, "# no ceilings\n");
        const mark = d.lines.length;
        Deno.kill(d.pid, "SIGHUP");
        assert.ok(
          await waitFor(() => d.lines.slice(mark).some((l) => /configuration reloaded/.test(l))),
          d.lines.slice(mark).join("\n"),
        );
        sb.ns.iperf(3);
        const resumed = await counters(sock);
        assert.ok(
          resumed.events - muted.events >= 2,
          `events resumed after the reload: ${JSON.stringify({ muted, resumed })}`,
        );
        // A stream of events is handled by the daemon's 1 s tick (the ring-buffer reader's paced
        // mode): the change may come up to a second after the kernel counted its event.
        assert.ok(
          await waitFor(() =>
            d.lines.slice(mark).some((l) => /Due to .* change net\.ipv4\.tcp_(r|w)mem/.test(l))
          ),
          d.lines.slice(mark).join("\n"),
        );
        assert.ok(
          sb.ns.sysctl(RMEM)[2] > LOW[2] || sb.ns.sysctl(WMEM)[2] > LOW[2],
          "a buffer grew past the old ceiling",
        );
        console.log(
          `tcp_buffer events and muted hits: ${JSON.stringify({ first, muted, resumed })}`,
        );
        assert.equal(await d.stop(), 0, "clean exit");
        const summary = d.matching(/# Events: tuner 'tcp_buffer' hooks fired/)[0];
        assert.match(summary ?? "", /\+ [1-9]\d* muted \(nothing they could change\)/);
      })),
});

Deno.test({
  name: "an admin write to a muted sysctl unmutes its namespace's events; so does enable",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("mutead", (sb) =>
      atCeiling(sb, async (d, sock) => {
        sb.ns.iperf(3);
        const muted = await counters(sock);
        assert.ok(muted.muted > 0, JSON.stringify(muted));

        // The admin writes the value it already has: still at the ceiling, but news.
        sb.cg.run(`ip netns exec ${sb.ns.name} sysctl -qw ${RMEM}="${LOW.join(" ")}"`);
        await d.waitFor(/modified sysctl 'net\.ipv4\.tcp_rmem'/);
        sb.ns.iperf(3);
        const afterWrite = await counters(sock);
        // Held off for 60 s otherwise; now one event per key, muted again (overridden, ceiling).
        assert.ok(
          afterWrite.events > muted.events,
          `the admin's write unmuted: ${JSON.stringify({ muted, afterWrite })}`,
        );
        sb.ns.iperf(3);
        const again = await counters(sock);
        assert.ok(
          again.events - afterWrite.events <= 1,
          `muted again: ${JSON.stringify({ afterWrite, again })}`,
        );

        // enable over the socket unmutes at once and hands the last muted event back to the
        // tuner: still at the ceiling, so it mutes its key again (for the ceiling this time)
        // without the kernel sending anything new.
        const r = await requestControl({ verb: "enable", target: RMEM }, { socketPath: sock });
        assert.ok(r.ok, JSON.stringify(r));
        const handedBack = await counters(sock);
        assert.ok(
          handedBack.rehandled > again.rehandled,
          `the override's end handed the muted event back: ${
            JSON.stringify({ again, handedBack })
          }`,
        );
        sb.ns.iperf(3);
        const enabled = await counters(sock);
        assert.ok(
          enabled.muted > handedBack.muted && enabled.events - handedBack.events <= 1,
          `at the ceiling it is muted again: ${JSON.stringify({ handedBack, enabled })}`,
        );
        console.log(
          `events and muted hits: ${JSON.stringify({ muted, afterWrite, again, enabled })}`,
        );
        assert.equal(await d.stop(), 0, "clean exit");
      })),
});
