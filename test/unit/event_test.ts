import assert from "node:assert/strict";
import {
  decodeEvent,
  encodeEvent,
  EVENT_SIZE,
  EVENT_VERSION,
  EventFormatError,
} from "../../src/tuning/event.ts";

Deno.test("events round-trip through the shared layout", () => {
  const bytes = encodeEvent({
    tuner: 2,
    kind: 7,
    flags: 3,
    pid: 4242,
    count: 17,
    netns: 4026531840n,
    tsNs: 123456789n,
    values: [1n, 2n, 0xffffffffffn],
    comm: "iperf3",
    rlNetns: 0n,
    rlKind: 23,
  });
  assert.equal(bytes.length, EVENT_SIZE);
  const e = decodeEvent(bytes);
  assert.equal(e.version, EVENT_VERSION);
  assert.equal(e.tuner, 2);
  assert.equal(e.kind, 7);
  assert.equal(e.flags, 3);
  assert.equal(e.pid, 4242);
  assert.equal(e.count, 17);
  assert.equal(e.netns, 4026531840n);
  assert.deepEqual(e.values.slice(0, 3), [1n, 2n, 0xffffffffffn]);
  assert.equal(e.comm, "iperf3");
  assert.equal(e.rlNetns, 0n);
  assert.equal(e.rlKind, 23);
});

Deno.test("text payloads (sysctl names) decode up to the NUL", () => {
  const e = decodeEvent(encodeEvent({ text: "net/ipv4/tcp_rmem", comm: "sysctl" }));
  assert.equal(e.text, "net/ipv4/tcp_rmem");
});

Deno.test("a short buffer or another format version is refused with a clear error", () => {
  assert.throws(() => decodeEvent(new Uint8Array(20)), EventFormatError);
  assert.throws(
    () => decodeEvent(encodeEvent({ version: 9 })),
    (e: Error) =>
      e instanceof EventFormatError &&
      new RegExp(`version 9.*version ${EVENT_VERSION}`).test(e.message),
  );
});

Deno.test("the decoder reads at the byte offsets bpf/include/bpfpilot.h defines", () => {
  const b = new Uint8Array(EVENT_SIZE);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, EVENT_VERSION, true);
  dv.setUint32(8, 99, true); // pid
  dv.setBigUint64(16, 5n, true); // netns
  dv.setBigUint64(32 + 8 * 7, 77n, true); // last payload slot
  b.set(new TextEncoder().encode("comm"), 96);
  dv.setBigUint64(112, 6n, true); // rl_netns
  dv.setUint32(120, 3, true); // rl_kind
  const e = decodeEvent(b);
  assert.equal(e.rlNetns, 6n);
  assert.equal(e.rlKind, 3);
  assert.equal(e.pid, 99);
  assert.equal(e.netns, 5n);
  assert.equal(e.values[7], 77n);
  assert.equal(e.comm, "comm");
});
