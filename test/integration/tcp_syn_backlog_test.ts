/**
 * The tcp_buffer tuner's SYN-backlog logic for real: a raw-socket SYN flood (test/support/
 * syn_flood.ts) fills a non-accepting listener's SYN queue in the test's namespace, whose
 * tcp_max_syn_backlog is tiny and syncookies off. The signal exercised is the SYN queue (no
 * handshake completes, so the accept queue stays empty): the BPF hook sees the SYN-ACK retransmits
 * of a listener holding 3/4 of tcp_max_syn_backlog. The backlog grows in that namespace and more
 * requests are held; with memory pressure simulated (BPFPILOT_FAULT_INJECT=
 * tcp_buffer:memory-pressure), syncookies are turned on instead. Only the sandbox namespace's
 * sysctls are touched (and rolled back by -R before it is deleted).
 */
import assert from "node:assert/strict";
import { IS_ROOT } from "../support/kernel.ts";
import { withSandbox } from "../support/sandbox.ts";
import { HAVE_PYTHON } from "../support/udp_flood.ts";
import { addSynPeerLink, synFlood } from "../support/syn_flood.ts";

const BACKLOG = "net.ipv4.tcp_max_syn_backlog", COOKIES = "net.ipv4.tcp_syncookies";
const TINY = 16;
const IGNORE = !IS_ROOT || !HAVE_PYTHON;

Deno.test({
  name: "SYN queue overflow with syncookies off grows tcp_max_syn_backlog; -R puts it back",
  ignore: IGNORE,
  async fn() {
    await withSandbox("syn", async (sb) => {
      addSynPeerLink(sb.ns);
      sb.ns.setSysctl(BACKLOG, [TINY]);
      sb.ns.setSysctl(COOKIES, [0]);
      const daemon = sb.start(["--allow", "tcp_buffer_tuner.so", "-R"]);
      await daemon.waitFor(/bpfpilot started/);
      const seconds = synFlood(sb.ns, { seconds: 8 });
      await daemon.waitFor(/increase 'net\.ipv4\.tcp_max_syn_backlog'/);
      const first = seconds[0], last = seconds.at(-1)!;
      assert.ok(first.drops > 0, `the tiny backlog dropped SYNs: ${JSON.stringify(first)}`);
      assert.ok(first.halfOpen <= TINY, JSON.stringify(first));
      const grown = sb.ns.sysctl(BACKLOG)[0];
      assert.ok(grown > TINY, `tcp_max_syn_backlog grew: ${grown}`);
      assert.equal(sb.ns.sysctl(COOKIES)[0], 0, "syncookies stay off with memory normal");
      assert.ok(
        last.halfOpen > first.halfOpen,
        `the grown backlog holds more requests: ${JSON.stringify(seconds)}`,
      );
      assert.ok(
        daemon.matching(
          /Scenario 'increase maximum syn backlog under load since syncookies are disabled' occurred for tunable 'net\.ipv4\.tcp_max_syn_backlog' in/,
        ).length >= 1,
      );
      assert.deepEqual(
        daemon.matching(/modified sysctl/),
        [],
        "our own writes are not the admin's",
      );
      assert.equal(await daemon.stop("SIGTERM"), 0);
      assert.ok(daemon.matching(/SYN queue overflows in 1 namespace/).length === 1);
      assert.equal(sb.ns.sysctl(BACKLOG)[0], TINY, "-R rolled the backlog back");
    });
  },
});

Deno.test({
  name: "SYN queue overflow under (simulated) memory pressure turns syncookies on instead",
  ignore: IGNORE,
  async fn() {
    await withSandbox("syncookie", async (sb) => {
      addSynPeerLink(sb.ns);
      sb.ns.setSysctl(BACKLOG, [TINY]);
      sb.ns.setSysctl(COOKIES, [0]);
      const daemon = sb.start(["--allow", "tcp_buffer_tuner.so"], {
        BPFPILOT_FAULT_INJECT: "tcp_buffer:memory-pressure",
      });
      await daemon.waitFor(/bpfpilot started/);
      const seconds = synFlood(sb.ns, { seconds: 5 });
      await daemon.waitFor(/enable 'net\.ipv4\.tcp_syncookies' rather than increasing/);
      assert.equal(sb.ns.sysctl(COOKIES)[0], 1, "syncookies on");
      assert.equal(sb.ns.sysctl(BACKLOG)[0], TINY, "the backlog did not grow");
      assert.ok(
        daemon.matching(
          /Due to low memory conditions under SYN flood, enable 'net\.ipv4\.tcp_syncookies' rather than increasing max SYN backlog/,
        ).length >= 1,
      );
      // With cookies on, the 3/4-of-tcp_max_syn_backlog drop no longer applies.
      const last = seconds.at(-1)!;
      assert.equal(last.syncookies, 1, JSON.stringify(seconds));
      assert.ok(
        last.halfOpen > TINY,
        `requests held past the tiny backlog: ${JSON.stringify(last)}`,
      );
      assert.equal(await daemon.stop("SIGTERM"), 0);
    });
  },
});
