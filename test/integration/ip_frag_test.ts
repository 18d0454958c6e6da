/**
 * The ip_frag tuner for real: fragmented UDP over loopback (MTU 1500) in a namespace of the
 * test's own whose ipfrag_high_thresh is set below one datagram's fragments, so reassembly fails.
 * On this kernel no reassembly hook attaches (fentry EPERM, no kprobes): the tuner polls. The
 * threshold grows, reassembly failures stop, -R restores it; IPv6's threshold is made to look
 * absent (fault injection, as with IPv6 disabled) and the tuner carries on with IPv4.
 */
import assert from "node:assert/strict";
import { IS_ROOT } from "../support/kernel.ts";
import { withSandbox } from "../support/sandbox.ts";
import { HAVE_PYTHON } from "../support/udp_flood.ts";
import { fragFlood } from "../support/frag_flood.ts";

const HIGH = 24576;
const SYSCTL = "net.ipv4.ipfrag_high_thresh";

Deno.test({
  name: "fragments over a low ipfrag_high_thresh: it grows (polled), failures stop, -R restores",
  ignore: !IS_ROOT || !HAVE_PYTHON,
  fn: () =>
    withSandbox("frag", async ({ ns, start }) => {
      ns.exec(["ip", "link", "set", "lo", "mtu", "1500"]);
      ns.setSysctl("net.ipv4.ipfrag_time", [1]); // failed reassemblies give their memory back soon
      ns.setSysctl("net.ipv4.ipfrag_low_thresh", [16384]); // low <= high, so low first
      ns.setSysctl(SYSCTL, [HIGH]);
      const daemon = start(["--allow", "ip_frag_tuner.so", "-R"], {
        BPFPILOT_FAULT_INJECT: "sysctl:net.ipv6.ip6frag_high_thresh",
      });
      await daemon.waitFor(/bpfpilot started/);
      // IPv6's threshold "absent": said once, and IPv4 is still tuned.
      await daemon.waitFor(/not tuning 'net\.ipv6\.ip6frag_high_thresh' in .*does not exist there/);
      assert.ok(
        daemon.matching(
          /optional hook frag4 unavailable: .*; instead: a poll of \/proc\/net\/sockstat/,
        )
          .length === 1,
        daemon.lines.join("\n"),
      );

      // ~3 datagrams of ~14 fragments a second: under a threshold below what the datagrams in
      // flight within ipfrag_time need, every datagram's fragments get partly in and none
      // completes; the threshold has to grow past that (about 8 steps from 24 KiB).
      const seconds = fragFlood(ns, { seconds: 24, gapMs: 300 });
      await daemon.waitFor(/Due to approaching fragmentation maximum threshold change/);
      const high = ns.sysctl(SYSCTL)[0];
      assert.ok(high > HIGH && high <= 64 * 1024 * 1024, `threshold grew within 64 MiB: ${high}`);
      assert.ok(seconds[0].fails > 0, `reassembly failed at first: ${JSON.stringify(seconds)}`);
      const tail = seconds.slice(-3);
      assert.ok(
        tail.every((s) => s.fails === 0 && s.oks > 0),
        `failures stopped: ${JSON.stringify(seconds)}\n${daemon.lines.join("\n")}`,
      );
      const due = daemon.matching(
        /Due to approaching fragmentation maximum threshold change net\.ipv4\.ipfrag_high_thresh from \(\d+\) -> \(\d+\)/,
      );
      assert.match(due[0], /from \(24576\) -> \(30720\)/);
      assert.ok(
        daemon.matching(
          /Scenario 'need to increase IP fragmentation high threshold' occurred for tunable 'net\.ipv4\.ipfrag_high_thresh' in non-global ns/,
        ).length >= 1,
      );
      assert.equal(await daemon.stop("SIGTERM"), 0);
      assert.ok(daemon.matching(/# ip_frag: \d+ polls of \/proc\/net\/sockstat/).length === 1);
      assert.equal(ns.sysctl(SYSCTL)[0], HIGH, "-R put the threshold back");
    }),
});
