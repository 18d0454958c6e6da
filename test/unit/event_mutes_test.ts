/**
 * The "don't resend" decision and its table, with a recording writer in place of the BPF map:
 * which outcomes mute an event's key and until when, and which changes unmute which keys.
 */
import assert from "node:assert/strict";
import { EventMutes, muteVerdict, type MuteWriter } from "../../src/daemon/event_mutes.ts";

const RMEM = "net.ipv4.tcp_rmem", WMEM = "net.ipv4.tcp_wmem";

function recorder(ok = true) {
  const ops: string[] = [];
  const writer: MuteWriter = {
    mute(tuner, netns, kind, lastNs, untilNs, need) {
      ops.push(
        `mute ${tuner} ${netns}/${kind} last=${lastNs} until=${untilNs ?? "cleared"}` +
          (need ? ` need<=${need}` : ""),
      );
      return ok;
    },
    unmute(tuner, netns, kind) {
      ops.push(`unmute ${tuner} ${netns}/${kind}`);
    },
  };
  return { writer, ops };
}

const ev = (rlNetns: bigint, rlKind: number, tsNs = 1_000_000_000n) => ({ rlNetns, rlKind, tsNs });

Deno.test("muteVerdict: only when every decision could change nothing", () => {
  assert.equal(muteVerdict([]), null, "no decision: the tuner may act on the next one");
  assert.equal(
    muteVerdict([{ kind: "at-ceiling", netns: "1", sysctl: RMEM }, {
      kind: "changed",
      netns: "1",
    }]),
    null,
  );
  assert.equal(
    muteVerdict([{ kind: "at-ceiling", netns: "1", sysctl: RMEM }, { kind: "other" }]),
    null,
    "a duplicate or a failed write keeps it unmuted",
  );
  assert.deepEqual(
    muteVerdict([
      { kind: "at-ceiling", netns: "1", sysctl: RMEM },
      { kind: "refused", netns: "global", sysctl: "net.ipv4.tcp_mem" },
    ]),
    {
      untilMs: null,
      netns: ["1", "global"],
      overrides: [],
      need: 0,
      reason: "at-ceiling, refused",
    },
  );
  const v = muteVerdict([
    { kind: "cooling-down", netns: "1", sysctl: RMEM, untilMs: 9000 },
    { kind: "overridden", netns: "1", sysctl: WMEM },
    { kind: "cooling-down", netns: "1", sysctl: "net.core.rmem_max", untilMs: 7000 },
  ]);
  assert.equal(v?.untilMs, 7000, "the first cool-down to end ends the mute");
  assert.deepEqual(v?.overrides, [{ netns: "1", sysctl: WMEM }]);
});

Deno.test("a key is muted until cleared, or until the end of its cool-down on the kernel's clock", () => {
  const { writer, ops } = recorder();
  const m = new EventMutes(writer, { recheckMs: null });
  m.afterEvent("tcp_buffer", ev(7n, 2), [{ kind: "at-ceiling", netns: "7", sysctl: RMEM }], 100);
  m.afterEvent(
    "tcp_buffer",
    ev(7n, 3),
    [{ kind: "cooling-down", netns: "7", sysctl: WMEM, untilMs: 5100 }],
    100,
  );
  assert.deepEqual(ops, [
    "mute tcp_buffer 7/2 last=1000000000 until=cleared",
    "mute tcp_buffer 7/3 last=1000000000 until=6000000000",
  ]);
  ops.length = 0;
  assert.equal(
    m.afterEvent(
      "tcp_buffer",
      ev(7n, 4),
      [{ kind: "cooling-down", netns: "7", sysctl: WMEM, untilMs: 600 }],
      100,
    ),
    null,
    "shorter than the rate limiter's interval: left to it",
  );
  assert.equal(m.afterEvent("tcp_buffer", ev(7n, 4), [{ kind: "changed", netns: "7" }], 100), null);
  assert.deepEqual(ops, []);
  assert.equal(m.size, 2);
  m.pruneExpired(5100);
  assert.equal(m.size, 1, "the kernel ended the cool-down mute by itself");
  assert.deepEqual(ops, [], "nothing to write for it");
});

Deno.test("namespaces that are gone: their keys unmuted in one pass, the others' and the host's kept", () => {
  const { writer, ops } = recorder();
  const m = new EventMutes(writer, { recheckMs: null });
  const ceiling = (netns: string) => [{ kind: "at-ceiling" as const, netns, sysctl: RMEM }];
  m.afterEvent("tcp_buffer", ev(7n, 2), ceiling("7"), 0);
  m.afterEvent("tcp_buffer", ev(8n, 2), ceiling("8"), 0);
  m.afterEvent("tcp_buffer", ev(9n, 2), ceiling("9"), 0);
  m.afterEvent("udp_buffer", ev(0n, 1), ceiling("global"), 0);
  ops.length = 0;
  assert.equal(m.forgetNetns(new Set(["7", "9", "11"])), 2);
  assert.deepEqual(ops.sort(), ["unmute tcp_buffer 7/2", "unmute tcp_buffer 9/2"]);
  assert.equal(m.size, 2);
  assert.equal(m.forgetNetns(new Set()), 0);
});

Deno.test("a change in a namespace unmutes its keys; a host-wide change or a reload every key", () => {
  const { writer, ops } = recorder();
  const m = new EventMutes(writer, { recheckMs: null });
  const ceiling = (netns: string) => [{ kind: "at-ceiling" as const, netns, sysctl: RMEM }];
  m.afterEvent("tcp_buffer", ev(7n, 2), ceiling("7"), 0);
  m.afterEvent("tcp_buffer", ev(8n, 2), ceiling("8"), 0);
  m.afterEvent("udp_buffer", ev(0n, 1), ceiling("global"), 0);
  ops.length = 0;
  assert.equal(m.changed("7"), 1);
  assert.deepEqual(ops, ["unmute tcp_buffer 7/2"]);
  assert.equal(m.changed("9"), 0);
  assert.equal(m.changed("global"), 2, "host-wide values may bound every namespace's");
  assert.equal(m.size, 0);
  m.afterEvent("tcp_buffer", ev(7n, 2), ceiling("7"), 0);
  assert.equal(m.changed("any", true), 1, "an admin write in every namespace");
  m.afterEvent("tcp_buffer", ev(7n, 2), ceiling("7"), 0);
  assert.equal(m.clearAll(), 1);
});

Deno.test("keys muted for an override are unmuted when it ends, not before", () => {
  const { writer, ops } = recorder();
  const m = new EventMutes(writer, { recheckMs: null });
  m.afterEvent("tcp_buffer", ev(7n, 2), [{ kind: "overridden", netns: "7", sysctl: RMEM }], 0);
  m.afterEvent("neigh_table", ev(0n, 17), [{ kind: "overridden", netns: "7" }], 0);
  m.afterEvent("tcp_buffer", ev(7n, 3), [{ kind: "at-ceiling", netns: "7", sysctl: WMEM }], 0);
  assert.ok(m.heldByOverrides);
  ops.length = 0;
  const asked: string[] = [];
  assert.equal(m.recheckOverrides((c) => (asked.push(c.tuner), true)), 0);
  assert.equal(asked.length, 2, "only the keys muted for an override are looked at");
  assert.equal(m.recheckOverrides((c) => c.tuner === "neigh_table"), 1);
  assert.deepEqual(ops, ["unmute tcp_buffer 7/2"]);
  assert.equal(m.recheckOverrides(() => false), 1);
  assert.ok(!m.heldByOverrides);
  assert.equal(m.size, 1, "the ceiling's mute stays");
});

Deno.test("bounded: a full table or a failed write mutes nothing", () => {
  const { writer } = recorder();
  const m = new EventMutes(writer, { limit: 2, recheckMs: null });
  const ceiling = [{ kind: "at-ceiling" as const, netns: "7", sysctl: RMEM }];
  assert.ok(m.afterEvent("t", ev(1n, 1), ceiling, 0));
  assert.ok(m.afterEvent("t", ev(2n, 1), ceiling, 0));
  assert.equal(m.afterEvent("t", ev(3n, 1), ceiling, 0), null);
  assert.ok(m.afterEvent("t", ev(2n, 1), ceiling, 0), "a key already held is muted again");
  assert.equal(m.size, 2);
  const failing = new EventMutes(recorder(false).writer, { recheckMs: null });
  assert.equal(failing.afterEvent("t", ev(1n, 1), ceiling, 0), null);
  assert.equal(failing.size, 0);
});

Deno.test("by default a mute lasts a minute at most: learning tuners still see an event a minute", () => {
  const { writer, ops } = recorder();
  const m = new EventMutes(writer);
  m.afterEvent("net_buffer", ev(1n, 2), [{ kind: "at-ceiling", netns: "global", sysctl: "x" }], 0);
  m.afterEvent(
    "net_buffer",
    ev(1n, 3),
    [{ kind: "cooling-down", netns: "global", sysctl: "x", untilMs: 5000 }],
    0,
  );
  assert.deepEqual(ops, [
    "mute net_buffer 1/2 last=1000000000 until=61000000000",
    "mute net_buffer 1/3 last=1000000000 until=6000000000",
  ]);
  m.pruneExpired(60_000);
  assert.equal(m.size, 0);
});

Deno.test("when an override ends, the last event muted for it is handed back, once", () => {
  const { writer, ops } = recorder();
  const m = new EventMutes(writer, { recheckMs: null });
  const first = ev(7n, 2, 1_000n), last = ev(7n, 2, 2_000n);
  m.afterEvent("tcp_buffer", first, [{ kind: "overridden", netns: "7" }], 0);
  m.afterEvent("tcp_buffer", last, [{ kind: "overridden", netns: "7" }], 0);
  m.afterEvent("tcp_buffer", ev(7n, 3), [{ kind: "at-ceiling", netns: "7", sysctl: WMEM }], 0);
  const handed: [string, unknown][] = [];
  const rehandle = (tuner: string, e: unknown) => handed.push([tuner, e]);
  assert.equal(m.recheckOverrides(() => true, rehandle), 0);
  assert.deepEqual(handed, [], "nothing while the override holds");
  ops.length = 0;
  // The handler may mute the key again (another override took its place): the table allows it.
  const again = (tuner: string, e: typeof last) => {
    rehandle(tuner, e);
    m.afterEvent(tuner, e, [{ kind: "overridden", netns: "7", sysctl: RMEM }], 0);
  };
  assert.equal(m.recheckOverrides((c) => c.sysctl !== undefined, again), 1);
  assert.deepEqual(handed, [["tcp_buffer", last]], "the latest evidence, not the first");
  assert.deepEqual(ops, ["unmute tcp_buffer 7/2", `mute tcp_buffer 7/2 last=2000 until=cleared`]);
  assert.equal(m.recheckOverrides(() => false, rehandle), 1);
  assert.equal(handed.length, 2);
  assert.equal(m.recheckOverrides(() => false, rehandle), 0, "handed back once");
  assert.equal(handed.length, 2);
});

Deno.test("a decision more evidence could change mutes its key only up to the least such need", () => {
  const more = (netns: string, need: number) => ({
    kind: "needs-more" as const,
    netns,
    sysctl: RMEM,
    need,
  });
  assert.equal(muteVerdict([more("7", 5000)])?.need, 5000);
  assert.equal(
    muteVerdict([more("7", 5000), more("7", 3000)])?.need,
    3000,
    "a need above 3000 could change the second decision",
  );
  const mixed = muteVerdict([more("7", 5000), { kind: "at-ceiling", netns: "7", sysctl: WMEM }]);
  assert.equal(mixed?.need, 5000, "what is at its ceiling changes with no need: the other decides");
  assert.equal(muteVerdict([more("7", 5000), { kind: "changed", netns: "7" }]), null);
  assert.equal(muteVerdict([more("7", 0)]), null, "no threshold: nothing muted");
  assert.equal(muteVerdict([more("7", 1.5)]), null);

  // Written into the kernel's value with the usual deadline (a minute) and unmuted by a change;
  // last_ns 0: a hit with more evidence is sent at once, not an interval after this event.
  const { writer, ops } = recorder();
  const m = new EventMutes(writer);
  assert.ok(m.afterEvent("tcp_buffer", ev(7n, 0x1801), [more("7", 5000)], 0));
  assert.deepEqual(ops, ["mute tcp_buffer 7/6145 last=0 until=61000000000 need<=5000"]);
  // A bigger need got through and still changed nothing (another rule): the threshold follows.
  assert.ok(m.afterEvent("tcp_buffer", ev(7n, 0x1801, 2_000_000_000n), [more("7", 7000)], 1000));
  assert.equal(ops.at(-1), "mute tcp_buffer 7/6145 last=0 until=62000000000 need<=7000");
  assert.equal(m.size, 1);
  // The max trimmed or grown (our write), or the admin's: the threshold goes with the mute.
  assert.equal(m.changed("7"), 1);
  assert.equal(ops.at(-1), "unmute tcp_buffer 7/6145");
  // Any other mute keeps the event's time: an expired one waits out the interval.
  assert.ok(
    m.afterEvent("tcp_buffer", ev(7n, 3), [{ kind: "at-ceiling", netns: "7", sysctl: WMEM }], 0),
  );
  assert.equal(ops.at(-1), "mute tcp_buffer 7/3 last=1000000000 until=61000000000");
});

Deno.test("advice mutes its key until the value changes, unless the repeats are wanted (audit)", () => {
  const advised = { kind: "advised" as const, netns: "7", sysctl: WMEM };
  assert.deepEqual(muteVerdict([advised]), {
    untilMs: null,
    netns: ["7"],
    overrides: [],
    need: 0,
    reason: "advised",
  });
  assert.equal(muteVerdict([advised], false), null);
  assert.equal(muteVerdict([advised, { kind: "other" }]), null);

  const { writer, ops } = recorder();
  const m = new EventMutes(writer);
  assert.ok(m.afterEvent("tcp_buffer", ev(7n, 3), [advised], 0));
  assert.deepEqual(ops, ["mute tcp_buffer 7/3 last=1000000000 until=61000000000"]);
  assert.equal(m.changed("7"), 1, "the administrator's write unmutes it");
  assert.equal(ops.at(-1), "unmute tcp_buffer 7/3");

  const audit = recorder();
  const counted = new EventMutes(audit.writer, { muteAdvice: false });
  assert.equal(counted.afterEvent("tcp_buffer", ev(7n, 3), [advised], 0), null);
  assert.deepEqual(audit.ops, [], "every repeat comes back to be counted");
});

Deno.test("heldByOverrides follows keys muted, muted again and unmuted, without a scan", () => {
  const { writer } = recorder();
  const m = new EventMutes(writer, { recheckMs: null });
  const over = [{ kind: "overridden" as const, netns: "7", sysctl: RMEM }];
  const ceiling = [{ kind: "at-ceiling" as const, netns: "7", sysctl: RMEM }];
  m.afterEvent("tcp_buffer", ev(7n, 2), over, 0);
  assert.ok(m.heldByOverrides);
  m.afterEvent("tcp_buffer", ev(7n, 2), ceiling, 0); // the same key, now for its ceiling
  assert.ok(!m.heldByOverrides, "the key's override mute was replaced");
  m.afterEvent("tcp_buffer", ev(7n, 2), over, 0);
  m.afterEvent("tcp_buffer", ev(7n, 2), over, 0); // again: counted once
  m.afterEvent("tcp_buffer", ev(8n, 2), [{ ...over[0], netns: "8" }], 0);
  assert.equal(m.changed("7"), 1);
  assert.ok(m.heldByOverrides, "namespace 8's override mute is left");
  assert.equal(m.clearAll(), 1);
  assert.ok(!m.heldByOverrides);
});

Deno.test("pruneExpired drops each mute at its end, also one muted after a prune for less", () => {
  const { writer } = recorder();
  const m = new EventMutes(writer, { recheckMs: null });
  const cool = (untilMs: number) => [
    { kind: "cooling-down" as const, netns: "7", sysctl: WMEM, untilMs },
  ];
  m.afterEvent("tcp_buffer", ev(7n, 2), cool(5000), 0);
  m.afterEvent("tcp_buffer", ev(7n, 3), cool(9000), 0);
  m.afterEvent("tcp_buffer", ev(7n, 4), [{ kind: "at-ceiling", netns: "7", sysctl: RMEM }], 0);
  m.pruneExpired(4999);
  assert.equal(m.size, 3);
  m.pruneExpired(5000);
  assert.equal(m.size, 2);
  // Muted after that prune, ending before the one left: its end still counts.
  m.afterEvent("tcp_buffer", ev(7n, 5), cool(6000), 4000);
  m.pruneExpired(5999);
  assert.equal(m.size, 3);
  m.pruneExpired(6000);
  assert.deepEqual(m.entries().map((e) => e.rlKind).sort(), [3, 4]);
  m.pruneExpired(1e12);
  assert.deepEqual(m.entries().map((e) => e.rlKind), [4], "a mute without an end stays");
});
