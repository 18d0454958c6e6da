/**
 * The journal sender against a real AF_UNIX datagram socket in a temp directory speaking the
 * native protocol (test/support/journal_receiver.ts): small entries as datagrams, an entry too
 * big for one as a sealed memfd, and a clear reason (never a throw) when nobody listens.
 */
import assert from "node:assert/strict";
import { encodeJournalEntry } from "../../src/log/journal_protocol.ts";
import { openJournalSocket } from "../../src/log/journal_socket.ts";
import { unixAddress } from "../../src/kernel/libc_socket.ts";
import { JournalReceiver } from "../support/journal_receiver.ts";

Deno.test("journal socket: entries arrive as datagrams, a huge one through a memfd", () => {
  const rx = new JournalReceiver();
  const sink = openJournalSocket(rx.path);
  assert.ok(sink, "libc reachable");
  try {
    assert.equal(sink.send(encodeJournalEntry([["MESSAGE", "one\ntwo"], ["PRIORITY", "5"]])), null);
    // Larger than the default socket send buffer (212992 bytes): EMSGSIZE, then the memfd.
    const big = "x".repeat(1 << 20);
    assert.equal(sink.send(encodeJournalEntry([["MESSAGE", big], ["PRIORITY", "6"]])), null);
    rx.drain();
    assert.equal(rx.entries.length, 2);
    assert.deepEqual(rx.entries[0].fields, { MESSAGE: "one\ntwo", PRIORITY: "5" });
    assert.equal(rx.entries[0].viaMemfd, false);
    assert.equal(rx.entries[1].fields.MESSAGE, big);
    assert.equal(rx.entries[1].viaMemfd, true);
  } finally {
    sink.close();
    rx.close();
  }
});

Deno.test("journal socket: no listener gives a reason, and sending again works once it is back", () => {
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-journald-absent-" });
  const sink = openJournalSocket(`${dir}/socket`);
  assert.ok(sink);
  try {
    const entry = encodeJournalEntry([["MESSAGE", "m"]]);
    assert.match(sink.send(entry) ?? "", /sending to .*\/socket: No such file or directory/);
    const restarted = new JournalReceiver(`${dir}/socket`);
    try {
      assert.equal(sink.send(entry), null, "a new socket at the path is reached, no reconnect");
      assert.equal(restarted.matching((f) => f.MESSAGE === "m").length, 1);
    } finally {
      restarted.close();
    }
    const tooLong = openJournalSocket(`/tmp/${"d".repeat(120)}`)!;
    assert.match(tooLong.send(entry) ?? "", /path too long/);
    tooLong.close();
    sink.close();
    assert.match(sink.send(entry) ?? "", /closed/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  assert.equal(unixAddress(""), null);
  assert.equal(unixAddress("/a\0b"), null);
  assert.deepEqual(unixAddress("/x"), new Uint8Array([1, 0, 47, 120, 0]));
});
