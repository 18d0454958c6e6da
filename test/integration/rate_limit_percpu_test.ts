/**
 * The rate limiter's per-CPU fast path (bpf/include/bpfpilot_rl_percpu.bpf.h) under real UDP drops
 * in a namespace of the test's own, with udp_buffer's drop hook loaded alone and the daemon's mute
 * writer: one event per interval and every other drop counted in it or still folded; a mute
 * reaches every CPU's cached decision at once (muted hits counted, none sent), an unmute too (the
 * next drop is sent although neither the interval nor the CPUs' hold time has passed), and a mute
 * with a deadline ends at it.
 */
import assert from "node:assert/strict";
import udpBufferObject from "../../dist/bpf/udp_buffer.bpf.o" with { type: "bytes" };
import { RingBufferReader, u32Key } from "../../src/libbpf/mod.ts";
import { loadObject } from "../../src/libbpf/load.ts";
import { type BpfpEvent, decodeEvent } from "../../src/tuning/event.ts";
import { rateLimitKey, RL_MAP, RL_VALUE_LAYOUT } from "../../src/tuning/rate_limit.ts";
import { bpfMuteWriter } from "../../src/daemon/mute_writer.ts";
import { netnsInumOf } from "../../src/kernel/netns.ts";
import { IS_ROOT, waitFor } from "../support/kernel.ts";
import type { TestNetns } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import { HAVE_PYTHON, udpFlood } from "../support/udp_flood.ts";

const RCVQ_FULL = 1; // enum ub_kind
const STAT_SUPPRESSED = 2, STAT_MUTED = 5; // enum bpfp_stat
const INTERVAL_NS = 10_000_000_000n; // longer than the test: every second event is a mute's doing
// struct bpfp_rl_cpu: three u64, then 16 slots of struct bpfp_rl_slot (40 bytes).
const SLOTS_OFFSET = 24, SLOT_SIZE = 40, SLOTS = 16;
const SLOT = { netns: 0, kind: 8, folded: 32 };

/** One burst of 400 datagrams into a receiver that reads none until it ends: the drops. */
function burst(ns: TestNetns): number {
  return udpFlood(ns, { rounds: 1, burst: 400, pauseMs: 0 })[0].dropped;
}

Deno.test({
  name:
    "per-CPU rate limiting: drops folded and counted; mutes and unmutes reach every CPU at once",
  ignore: !IS_ROOT || !HAVE_PYTHON,
  fn: () =>
    withSandbox("rlcpu", async ({ ns }) => {
      const { object } = loadObject(udpBufferObject, {
        name: "bpfp_rlcpu",
        enable: (p) => p.name === "bpfp_ub_rcv_btf",
      });
      const reader = new RingBufferReader({ minGapMs: 0 });
      try {
        const netns = netnsInumOf(`/run/netns/${ns.name}`);
        const config = new Uint8Array(64); // struct bpfp_config: rl_interval_ns first
        new DataView(config.buffer).setBigUint64(0, INTERVAL_NS, true);
        object.map("bpfp_config").update(u32Key(0), config);
        object.program("bpfp_ub_rcv_btf").attach("tp_btf", "udp_fail_queue_rcv_skb");
        const events: BpfpEvent[] = [];
        reader.add(object.map("bpfp_events"), (b) => {
          const e = decodeEvent(b);
          if (e.netns === netns) events.push(e);
        });
        const loop = reader.start();
        const errors: string[] = [];
        const writer = bpfMuteWriter(() => object, (m) => errors.push(m));
        const stat = (slot: number) => object.map("bpfp_stats").sumU64(u32Key(slot));
        /** Events for the namespace once the reader has caught up. */
        const settled = async (n: number) => {
          await waitFor(() => events.length >= n, 3000);
          await new Promise((r) => setTimeout(r, 100));
          return events.length;
        };
        /** Drops folded and not yet sent: in the shared value and each CPU's slot for the key. */
        const pending = () => {
          const shared = object.map(RL_MAP).lookup(rateLimitKey(netns, RCVQ_FULL));
          let n = shared
            ? new DataView(shared.buffer).getBigUint64(RL_VALUE_LAYOUT.folded.offset, true)
            : 0n;
          for (const cpu of object.map("bpfp_rl_cpu").lookupPerCpu(u32Key(0)) ?? []) {
            const dv = new DataView(cpu.buffer, cpu.byteOffset, cpu.byteLength);
            for (let i = 0; i < SLOTS; i++) {
              const at = SLOTS_OFFSET + i * SLOT_SIZE;
              if (
                dv.getBigUint64(at + SLOT.netns, true) === netns &&
                dv.getUint32(at + SLOT.kind, true) === RCVQ_FULL
              ) n += dv.getBigUint64(at + SLOT.folded, true);
            }
          }
          return Number(n);
        };

        // One event for the first drop; the others folded, each counted in it or still pending.
        const s0 = stat(STAT_SUPPRESSED);
        const first = burst(ns);
        assert.ok(first > 1, `the burst overflowed the receive queue: ${first} drops`);
        assert.equal(
          await settled(1),
          1,
          `one event per interval, counts ${events.map((e) => e.count)}`,
        );
        assert.equal(events[0].rlNetns, netns);
        assert.equal(events[0].rlKind, RCVQ_FULL);
        assert.equal(events[0].count + pending(), first, "every drop is in the count or pending");
        assert.ok(stat(STAT_SUPPRESSED) - s0 >= BigInt(first - 1), "folded drops counted");

        // Muted until cleared: the CPUs drop their cached "folded" at once; hits counted as muted.
        assert.ok(writer.mute("udp_buffer", netns, RCVQ_FULL, events[0].tsNs, null));
        const m0 = stat(STAT_MUTED), s1 = stat(STAT_SUPPRESSED);
        const whileMuted = burst(ns);
        assert.equal(await settled(1), 1, "nothing sent while muted");
        assert.ok(stat(STAT_MUTED) - m0 >= BigInt(whileMuted), "every drop counted as muted");
        assert.equal(stat(STAT_SUPPRESSED), s1, "none counted as folded");

        // Unmuted: sent at once, within the 10 s interval and the CPUs' 1 s hold.
        writer.unmute("udp_buffer", netns, RCVQ_FULL);
        burst(ns);
        assert.equal(await settled(2), 2, "the first drop after the unmute is sent");

        // Muted for 2.5 s (past the CPUs' 1 s hold: re-checked and held again), then sent again.
        const until = events[1].tsNs + 2_500_000_000n;
        assert.ok(writer.mute("udp_buffer", netns, RCVQ_FULL, 0n, until));
        const muted = Date.now();
        const m1 = stat(STAT_MUTED);
        burst(ns);
        await new Promise((r) => setTimeout(r, 1200 - (Date.now() - muted)));
        burst(ns);
        assert.equal(await settled(2), 2, "nothing sent before the deadline");
        assert.ok(stat(STAT_MUTED) > m1, "drops before the deadline counted as muted");
        await new Promise((r) => setTimeout(r, 2700 - (Date.now() - muted)));
        burst(ns);
        assert.equal(await settled(3), 3, "sent again once the mute ended");
        assert.deepEqual(errors, []);
        await reader.stop();
        await loop;
      } finally {
        reader.close();
        object.close();
      }
    }),
});
