import assert from "node:assert/strict";
import {
  decodeJournalEntry,
  encodeJournalEntry,
  isValidFieldName,
  JournalFieldError,
} from "../../src/log/journal_protocol.ts";
import {
  EVENT_FIELD,
  journalFieldName,
  journalFields,
  MESSAGE_IDS,
} from "../../src/log/journal_fields.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("journal entry: simple fields as NAME=value lines", () => {
  const bytes = encodeJournalEntry([["MESSAGE", "hello world"], ["PRIORITY", "5"]]);
  assert.equal(text(bytes), "MESSAGE=hello world\nPRIORITY=5\n");
});

Deno.test("journal entry: a value with a newline takes the binary form (u64 LE length)", () => {
  const bytes = encodeJournalEntry([["MESSAGE", "two\nlines"], ["PRIORITY", "3"]]);
  const expected = new Uint8Array([
    ...new TextEncoder().encode("MESSAGE\n"),
    9,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    ...new TextEncoder().encode("two\nlines\n"),
    ...new TextEncoder().encode("PRIORITY=3\n"),
  ]);
  assert.deepEqual(bytes, expected);
  assert.deepEqual(decodeJournalEntry(bytes).map(([k, v]) => [k, text(v)]), [
    ["MESSAGE", "two\nlines"],
    ["PRIORITY", "3"],
  ]);
});

Deno.test("journal entry: binary values (NUL, =, bytes >127, newline) round-trip exactly", () => {
  const blob = new Uint8Array([0, 10, 61, 255, 128, 10]);
  const plain = new Uint8Array([0, 61, 200]);
  const bytes = encodeJournalEntry([["BLOB", blob], ["PLAIN", plain], ["EMPTY", ""]]);
  const fields = decodeJournalEntry(bytes);
  assert.deepEqual(fields, [["BLOB", blob], ["PLAIN", plain], ["EMPTY", new Uint8Array()]]);
  // Without a newline the simple form is used; everything after the first '=' is the value.
  const e = new TextEncoder();
  const tail = new Uint8Array([...e.encode("PLAIN="), 0, 61, 200, ...e.encode("\nEMPTY=\n")]);
  assert.deepEqual(bytes.subarray(bytes.length - tail.length), tail);
});

Deno.test("journal entry: field names journald would refuse are an error", () => {
  for (const bad of ["", "_PID", "message", "1ABC", "A-B", "É", "A B", "A".repeat(65)]) {
    assert.equal(isValidFieldName(bad), false, bad);
    assert.throws(() => encodeJournalEntry([[bad, "x"]]), JournalFieldError, bad);
  }
  for (const good of ["MESSAGE", "A", "BPFPILOT_NETNS", "X9_", "A".repeat(64)]) {
    assert.equal(isValidFieldName(good), true, good);
  }
});

Deno.test("journal entry decoder: a cut or mis-sized binary field is an error", () => {
  const bytes = encodeJournalEntry([["M", "a\nb"]]);
  assert.throws(() => decodeJournalEntry(bytes.subarray(0, 5)), JournalFieldError);
  assert.throws(() => decodeJournalEntry(bytes.subarray(0, bytes.length - 1)), JournalFieldError);
  assert.throws(() => decodeJournalEntry(new TextEncoder().encode("NOEND")), JournalFieldError);
});

Deno.test("MESSAGE_IDs: 32 lowercase hex digits each, all different", () => {
  const ids = Object.values(MESSAGE_IDS);
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal(new Set(ids).size, ids.length);
});

Deno.test("journal fields of a change record: fixed fields, MESSAGE_ID, BPFPILOT_*", () => {
  const fields = journalFields({
    priority: 6,
    message: "Due to need to increase TCP buffer size(s) change net.ipv4.tcp_rmem ...",
    fields: {
      [EVENT_FIELD]: "changed",
      tuner: "tcp_buffer",
      scenario: "need to increase TCP buffer size(s)",
      sysctl: "net.ipv4.tcp_rmem",
      netns: "ns:4026532001",
      from: [4096, 131072, 65536],
      to: [4096, 131072, 81920],
      reason: "a reason\nover two lines",
      hooks: [{ hook: "tcp_probe", kind: "tp_btf" }],
      comm: "evil\x1b[31m",
      skipped: undefined,
      none: null,
      "weird-key.x": 1,
    },
  });
  assert.deepEqual(fields, [
    ["MESSAGE", "Due to need to increase TCP buffer size(s) change net.ipv4.tcp_rmem ..."],
    ["PRIORITY", "6"],
    ["SYSLOG_IDENTIFIER", "bpfpilot"],
    ["SYSLOG_FACILITY", "3"],
    ["MESSAGE_ID", MESSAGE_IDS.changed],
    ["BPFPILOT_TUNER", "tcp_buffer"],
    ["BPFPILOT_SCENARIO", "need to increase TCP buffer size(s)"],
    ["BPFPILOT_SYSCTL", "net.ipv4.tcp_rmem"],
    ["BPFPILOT_NETNS", "ns:4026532001"],
    ["BPFPILOT_FROM", "4096 131072 65536"],
    ["BPFPILOT_TO", "4096 131072 81920"],
    ["BPFPILOT_REASON", "a reason\nover two lines"],
    ["BPFPILOT_HOOKS", '[{"hook":"tcp_probe","kind":"tp_btf"}]'],
    ["BPFPILOT_COMM", "evil\\x1b[31m"],
    ["BPFPILOT_WEIRD_KEY_X", "1"],
  ]);
  // Every name it produces is one journald accepts.
  encodeJournalEntry(fields);
});

Deno.test("journal fields: an unknown event is a plain field, a name too long is dropped", () => {
  const fields = journalFields({
    priority: 5,
    message: "m\x07",
    fields: { event: "nonsense", ["k".repeat(60)]: "dropped" },
  });
  assert.deepEqual(fields.slice(0, 1), [["MESSAGE", "m\\x07"]]);
  assert.deepEqual(fields.slice(4), [["BPFPILOT_EVENT", "nonsense"]]);
  assert.equal(journalFieldName("k".repeat(55)), `BPFPILOT_${"K".repeat(55)}`);
  assert.equal(journalFieldName("k".repeat(56)), null);
});

Deno.test("README lists every MESSAGE_ID with its kind, as the code has them", () => {
  const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));
  const rows = new Map(
    [...readme.matchAll(/^\| `([0-9a-f]{32})` +\| `([a-z_]+)` +\|/gm)].map((m) => [m[2], m[1]]),
  );
  assert.deepEqual(Object.fromEntries(rows), { ...MESSAGE_IDS });
});
