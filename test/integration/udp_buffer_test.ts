/**
 * The udp_buffer tuner for real: bursts of UDP datagrams into receivers that read nothing until
 * the burst is over (their receive queues overflow), in a namespace of the test's own, with the
 * host's rmem_max and rmem_default set low for the test (they are host-wide sysctls) and put
 * back afterwards. Unlocked receivers drive growth and their drops fall; receivers that set
 * SO_RCVBUF do not; advise mode writes nothing; -R rolls every change back.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import type { DaemonProcess, TestCgroup, TestNetns } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import { HAVE_PYTHON, udpFlood } from "../support/udp_flood.ts";

const LOW = 16384;

function hostRead(name: string): string {
  return execFileSync("sysctl", ["-n", name], { encoding: "utf8" }).trim().split(/\s+/).join(" ");
}

function hostWrite(name: string, value: string): void {
  execFileSync("sysctl", ["-qw", `${name}=${value}`]);
}

/**
 * A daemon on udp_buffer alone in a sandbox, with the host's rmem_max and rmem_default low; the
 * sandbox puts them back (they are host-wide tunables) once the daemon is gone.
 */
function withLowRmem(
  tag: string,
  extraArgs: string[],
  body: (r: { ns: TestNetns; daemon: DaemonProcess; cg: TestCgroup }) => Promise<void>,
  env: Record<string, string> = {},
) {
  return withSandbox(tag, async (sb) => {
    hostWrite("net.core.rmem_max", String(LOW));
    hostWrite("net.core.rmem_default", String(LOW));
    const daemon = sb.start(["--allow", "udp_buffer_tuner.so", ...extraArgs], env);
    await daemon.waitFor(/bpfpilot started/);
    await body({ ns: sb.ns, daemon, cg: sb.cg });
  });
}

const IGNORE = !IS_ROOT || !HAVE_PYTHON;

Deno.test({
  name: "UDP receive-queue drops grow rmem_default/rmem_max, drops fall, -R restores both",
  ignore: IGNORE,
  async fn() {
    await withLowRmem("udp", ["-R"], async ({ ns, daemon }) => {
      const rounds = udpFlood(ns, { rounds: 10, burst: 400, pauseMs: 1200 });
      await daemon.waitFor(/change net\.core\.rmem_default from/);
      const first = rounds[0], last = rounds.at(-1)!;
      assert.equal(first.rcvbuf, LOW, "the first receiver gets the low rmem_default");
      assert.ok(first.dropped > 0, `drops counted: ${JSON.stringify(first)}`);
      assert.ok(last.rcvbuf > LOW, `later receivers get a grown default: ${JSON.stringify(last)}`);
      assert.ok(last.dropped < first.dropped, `drops fell: ${JSON.stringify(rounds)}`);
      const rmemMax = Number(hostRead("net.core.rmem_max"));
      const rmemDefault = Number(hostRead("net.core.rmem_default"));
      assert.ok(rmemMax > LOW && rmemMax <= 268435456, `rmem_max grew: ${rmemMax}`);
      assert.ok(rmemDefault > LOW && rmemDefault <= rmemMax, `default grew: ${rmemDefault}`);

      // bpftune's lines: the scenario, "Due to ... change <sysctl> from a -> b", the drop rate.
      const due = daemon.matching(
        /Due to need to increase receive buffer size to maximize throughput change net\.core\.rmem_max from \d+ -> \d+/,
      );
      assert.ok(due.length >= 1);
      assert.match(due[0], /from 16384 -> 20480/);
      assert.ok(
        daemon.matching(
          /Scenario 'need to increase UDP buffer size\(s\)' occurred for tunable 'net\.core\.rmem_default' in global ns/,
        )
          .length >= 1,
      );
      assert.ok(
        daemon.matching(/netns: \d+ UDP in \d+, drops [1-9]\d* drop rate [1-9]\d*/).length >= 1,
      );
      assert.deepEqual(
        daemon.matching(/modified sysctl/),
        [],
        "our own writes are not the admin's",
      );

      assert.equal(await daemon.stop("SIGTERM"), 0);
      assert.ok(
        daemon.matching(/# Summary: scenario 'need to increase UDP buffer size\(s\)'/).length >= 1,
      );
      // -R: every value the tuner changed is back.
      assert.equal(hostRead("net.core.rmem_max"), String(LOW));
      assert.equal(hostRead("net.core.rmem_default"), String(LOW));
    });
  },
});

Deno.test({
  name: "receivers that set SO_RCVBUF drop datagrams but do not drive growth",
  ignore: IGNORE,
  async fn() {
    await withLowRmem("udplk", [], async ({ ns, daemon }) => {
      const rounds = udpFlood(ns, { rounds: 3, burst: 400, soRcvbuf: LOW, pauseMs: 1200 });
      assert.ok(rounds.every((r) => r.dropped > 0), JSON.stringify(rounds));
      assert.equal(await daemon.stop("SIGTERM"), 0);
      assert.equal(hostRead("net.core.rmem_max"), String(LOW));
      assert.equal(hostRead("net.core.rmem_default"), String(LOW));
      assert.deepEqual(daemon.matching(/change net\.core\.rmem/), []);
      const events = daemon.matching(/# Events: tuner 'udp_buffer' hooks fired/)[0];
      const m =
        /fired (\d+) times past their cheap tests = \d+ with no limit near \+ (\d+) filtered .*\+ (\d+) sent as events .*; (\d+) events reached userspace/
          .exec(events ?? "");
      assert.ok(m, daemon.lines.join("\n"));
      const [hits, filtered, sent, received] = m.slice(1).map(Number);
      assert.ok(hits > 0 && filtered > 0, `locked drops seen and filtered: ${events}`);
      assert.equal(sent + received, 0, "no event reached userspace");
    });
  },
});

Deno.test({
  name: "udp_buffer --advise logs the proposal once and writes nothing",
  ignore: IGNORE,
  async fn() {
    await withLowRmem("udpadv", ["--advise"], async ({ ns, daemon }) => {
      udpFlood(ns, { rounds: 3, burst: 400, pauseMs: 1200 });
      await daemon.waitFor(
        /advise mode: not applied; to apply: sysctl -w net\.core\.rmem_default=/,
      );
      assert.equal(await daemon.stop("SIGTERM"), 0);
      assert.equal(hostRead("net.core.rmem_max"), String(LOW));
      assert.equal(hostRead("net.core.rmem_default"), String(LOW));
      assert.equal(daemon.matching(/change net\.core\.rmem_default from 16384 -> 20480/).length, 1);
    });
  },
});

Deno.test({
  name: "an admin write of net.core.rmem_max stops udp_buffer from tuning it",
  ignore: IGNORE,
  async fn() {
    await withLowRmem("udpadm", [], async ({ ns, daemon, cg }) => {
      cg.run(`sysctl -qw net.core.rmem_max=${LOW}`);
      await daemon.waitFor(
        /modified sysctl 'net\.core\.rmem_max' that tuner 'udp_buffer' uses; no longer tuning/,
      );
      udpFlood(ns, { rounds: 3, burst: 400, pauseMs: 1200 });
      assert.equal(await daemon.stop("SIGTERM"), 0);
      assert.equal(hostRead("net.core.rmem_max"), String(LOW), "rmem_max left to the admin");
      assert.deepEqual(daemon.matching(/change net\.core\.rmem_max from/), []);
      // rmem_default never passes rmem_max, so it stays too.
      assert.equal(hostRead("net.core.rmem_default"), String(LOW));
    });
  },
});

// Every flavour of each hook loads and drives the tuner on this kernel: the first choices are
// exercised above; the fallbacks here, one at a time.
const FLAVOURS: { what: string; args: string[]; env: Record<string, string>; line: RegExp }[] = [
  {
    what: "skb:kfree_skb with reason SOCKET_RCVBUFF (tp_btf, rx_sk)",
    args: [],
    env: { BPFPILOT_FAULT_INJECT: "program:bpfp_ub_rcv_btf" },
    line: /udp_rcvq via tp_btf kfree_skb/,
  },
  {
    what: "raw_tp udp_fail_queue_rcv_skb, and the classic sock_exceed_buf_limit tracepoint",
    args: ["--legacy"],
    env: {},
    line:
      /udp_rcvq via raw_tp udp_fail_queue_rcv_skb, udp_mem via tracepoint sock\/sock_exceed_buf_limit/,
  },
];

for (const f of FLAVOURS) {
  Deno.test({
    name: `udp_buffer's fallback flavour ${f.what} loads and drives growth`,
    ignore: IGNORE,
    async fn() {
      await withLowRmem("udpfl", f.args, async ({ ns, daemon }) => {
        assert.ok(daemon.matching(f.line).length === 1, daemon.lines.join("\n"));
        udpFlood(ns, { rounds: 3, burst: 400, pauseMs: 1200 });
        await daemon.waitFor(/change net\.core\.rmem_default from 16384 -> 20480/);
        assert.equal(await daemon.stop("SIGTERM"), 0);
      }, f.env);
    },
  });
}
