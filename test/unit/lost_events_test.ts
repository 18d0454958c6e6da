import assert from "node:assert/strict";
import { LostEventsReads, LostEventsReporter } from "../../src/daemon/lost_events.ts";

Deno.test("lost events: reported at once, then at most once a period with the count since", () => {
  const lines: [string, Record<string, unknown> | undefined][] = [];
  const log = {
    debugEnabled: false,
    error() {},
    warn: (m: string, f?: Record<string, unknown>) => lines.push([m, f]),
    notice() {},
    info() {},
    debug() {},
  };
  let now = 0;
  const r = new LostEventsReporter(log, () => now, 60_000);
  r.observe("tcp_buffer", 0);
  assert.equal(lines.length, 0, "nothing lost, nothing said");
  r.observe("tcp_buffer", 5);
  now = 1_000;
  r.observe("tcp_buffer", 900); // within the period: no second line
  r.observe("udp_buffer", 2); // another tuner has its own period
  now = 61_000;
  r.observe("tcp_buffer", 1000);
  r.observe("tcp_buffer", 1000);
  assert.deepEqual(lines.map(([, f]) => f), [
    { event: "events_lost", tuner: "tcp_buffer", lost: 5, total: 5 },
    { event: "events_lost", tuner: "udp_buffer", lost: 2, total: 2 },
    { event: "events_lost", tuner: "tcp_buffer", lost: 995, total: 1000 },
  ]);
  assert.match(lines[0][0], /^tuner tcp_buffer lost 5 BPF event\(s\) to a full ring buffer/);
});

Deno.test("lost events: the counter is read after a tuner's events, else every 10th tick", () => {
  const r = new LostEventsReads(10);
  const reads = (seen: number[], from: number) =>
    seen.flatMap((n, i) => r.due("tcp_conn", n, from + i) ? [from + i] : []);
  assert.deepEqual(reads([0, 0, 0], 1), [1], "the first tick reads; no events, no reads");
  assert.deepEqual(reads([3, 3, 4, 4], 4), [4, 6], "each tick after new events reads");
  assert.deepEqual(reads([4, 4, 4], 9), [10], "a quiet tuner still every 10th tick");
  assert.equal(r.due("udp_buffer", 0, 11), true, "each tuner on its own");
});
