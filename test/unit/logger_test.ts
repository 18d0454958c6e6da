import assert from "node:assert/strict";
import { createLogger, type LoggerOptions, stderrIsJournal } from "../../src/log/logger.ts";
import {
  createSyslogSink,
  type LibcSyslog,
  LOG_DAEMON,
  LOG_NDELAY,
  LOG_PID,
  type SyslogSink,
} from "../../src/log/syslog.ts";
import { JournalReceiver } from "../support/journal_receiver.ts";
import { decodeJournalEntry } from "../../src/log/journal_protocol.ts";
import { MESSAGE_IDS } from "../../src/log/journal_fields.ts";

/** A logger writing to `lines`; never the host's journal socket unless a test names one. */
function capture(opts: LoggerOptions = {}) {
  const lines: string[] = [];
  const logger = createLogger({ writer: (line) => lines.push(line), journal: null, ...opts });
  return { logger, lines };
}

/** The environment systemd gives a service whose stderr is the journal stream. */
const UNDER_SYSTEMD = {
  env: (name: string) => name === "JOURNAL_STREAM" ? "64769:123456" : undefined,
  stderrIdentity: () => "64769:123456",
};

/** Records what reaches syslog() as raw C strings. */
function fakeLibc() {
  const decoder = new TextDecoder();
  const calls: { fn: string; args: unknown[] }[] = [];
  const libc: LibcSyslog = {
    openlog: (ident, option, facility) =>
      calls.push({ fn: "openlog", args: [decoder.decode(ident), option, facility] }),
    syslog: (priority, format, text) =>
      calls.push({ fn: "syslog", args: [priority, decoder.decode(format), decoder.decode(text)] }),
    closelog: () => calls.push({ fn: "closelog", args: [] }),
  };
  return { libc, calls };
}

function recordingSink(): SyslogSink & { sent: [number, string][] } {
  const sent: [number, string][] = [];
  return { sent, send: (p, line) => sent.push([p, line]), close: () => {} };
}

const FIXED = () => new Date("2025-11-25T03:04:05.678Z");

Deno.test("stderr text: 'bpfpilot: ' prefix, fields as key=value, one line per message line", () => {
  const { logger, lines } = capture({ target: "stderr" });
  assert.equal(logger.target, "stderr");
  logger.notice("Scenario 'need to increase TCP buffer size(s)' occurred for tunable 'tcp_rmem'");
  logger.warn("two\nlines\n", { tuner: "tcp_buffer", value: "4096 131072", n: 3 });
  logger.error('quote"s and = in fields', { why: 'a "b"', ok: true, none: null });
  logger.info("bpfpilot started (2 tuners)");
  assert.deepEqual(lines, [
    "bpfpilot: Scenario 'need to increase TCP buffer size(s)' occurred for tunable 'tcp_rmem'",
    'bpfpilot: two tuner=tcp_buffer value="4096 131072" n=3',
    'bpfpilot: lines tuner=tcp_buffer value="4096 131072" n=3',
    'bpfpilot: quote"s and = in fields why="a \\"b\\"" ok=true none=null',
    "bpfpilot started (2 tuners)", // named once, not "bpfpilot: bpfpilot started"
  ]);
});

Deno.test("printf directives in messages and fields are logged literally everywhere", () => {
  const msg = "pid 42, cmd '%s%s%n%x%p' modified sysctl 'net.ipv4.tcp_rmem'";
  for (const target of ["stderr", "journal"] as const) {
    const { logger, lines } = capture({ target, ...UNDER_SYSTEMD });
    logger.notice(msg, { comm: "%n%n" });
    assert.equal(lines.length, 1);
    assert.ok(lines[0].endsWith(`${msg} comm=%n%n`), lines[0]);
  }
  const { logger, lines } = capture({ target: "stderr", format: "json" });
  logger.notice(msg);
  assert.equal(JSON.parse(lines[0]).msg, msg);
});

Deno.test('syslog: the text is the argument of a constant "%s" format, never the format', () => {
  const { libc, calls } = fakeLibc();
  const logger = createLogger({ target: "syslog", syslog: createSyslogSink(libc) });
  assert.equal(logger.target, "syslog");
  logger.notice("cmd '%n%s' wrote\nsecond line");
  logger.debug("hidden");
  logger.error("nul \0 inside");
  logger.close();
  assert.deepEqual(calls, [
    { fn: "openlog", args: ["bpfpilot\0", LOG_PID | LOG_NDELAY, LOG_DAEMON] },
    { fn: "syslog", args: [LOG_DAEMON | 5, "%s\0", "cmd '%n%s' wrote\0"] },
    { fn: "syslog", args: [LOG_DAEMON | 5, "%s\0", "second line\0"] },
    { fn: "syslog", args: [LOG_DAEMON | 3, "%s\0", "nul \\x00 inside\0"] },
    { fn: "closelog", args: [] },
  ]);
  assert.equal(LOG_PID | LOG_NDELAY, 9);
  assert.equal(LOG_DAEMON, 24);
});

Deno.test("journal without its socket: sd-daemon priority prefixes on the stream", () => {
  const { logger, lines } = capture({ target: "journal", debug: true, ...UNDER_SYSTEMD });
  logger.error("e");
  logger.warn("w");
  logger.notice("n");
  logger.info("i");
  logger.debug("d\nd2");
  assert.deepEqual(lines, ["<3>e", "<4>w", "<5>n", "<6>i", "<7>d", "<7>d2"]);
  const json = capture({ target: "journal", format: "json", now: FIXED, ...UNDER_SYSTEMD });
  json.logger.warn("x", { k: 1 });
  assert.equal(
    json.lines[0],
    '<4>{"ts":"2025-11-25T03:04:05.678Z","level":"warning","msg":"x","k":1}',
  );
});

Deno.test("json: one object per record; fields never override ts/level/msg", () => {
  const { logger, lines } = capture({ target: "stderr", format: "json", now: FIXED });
  const circular: Record<string, unknown> = { a: 1 };
  circular.self = circular;
  logger.info("multi\nline", {
    msg: "spoof",
    level: "debug",
    ts: 0,
    big: 2n ** 64n,
    err: new Error("boom"),
    circular,
    values: [4096, 131072],
  });
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]);
  assert.equal(rec.ts, "2025-11-25T03:04:05.678Z");
  assert.equal(rec.level, "info");
  assert.equal(rec.msg, "multi\nline");
  assert.equal(rec.field_msg, "spoof");
  assert.equal(rec.field_level, "debug");
  assert.equal(rec.field_ts, 0);
  assert.equal(rec.big, "18446744073709551616");
  assert.deepEqual(rec.err, { name: "Error", message: "boom" });
  assert.deepEqual(rec.circular, { a: 1, self: "[circular]" });
  assert.deepEqual(rec.values, [4096, 131072]);
  assert.deepEqual(Object.keys(rec).slice(0, 3), ["ts", "level", "msg"]);
});

Deno.test("debug records only with debug: true", () => {
  const off = capture({ target: "stderr" });
  off.logger.debug("no");
  off.logger.info("yes");
  assert.deepEqual(off.lines, ["bpfpilot: yes"]);
  assert.equal(off.logger.debugEnabled, false);
  const on = capture({ target: "stderr", debug: true });
  on.logger.debug("yes");
  assert.deepEqual(on.lines, ["bpfpilot: yes"]);
});

Deno.test("child loggers add fields; per-call fields win", () => {
  const { logger, lines } = capture({ target: "stderr" });
  const tuner = logger.child({ tuner: "tcp_buffer", netns: "global" });
  tuner.child({ netns: "4026532" }).notice("a", { extra: 1 });
  tuner.notice("b", { tuner: "other" });
  logger.notice("c");
  assert.deepEqual(lines, [
    "bpfpilot: a tuner=tcp_buffer netns=4026532 extra=1",
    "bpfpilot: b tuner=other netns=global",
    "bpfpilot: c",
  ]);
});

Deno.test("control characters cannot forge lines or reach the terminal", () => {
  const { logger, lines } = capture({ target: "stderr" });
  logger.notice("cmd '\x1b[31mred\rfake' done", { comm: "x\ny" });
  assert.deepEqual(lines, ["bpfpilot: cmd '\\x1b[31mred\\x0dfake' done comm=\"x\\ny\""]);
});

Deno.test("auto: journal when JOURNAL_STREAM matches stderr, else syslog, else stderr", () => {
  const env = (v: string | undefined) => (name: string) =>
    name === "JOURNAL_STREAM" ? v : undefined;
  const id = () => "64769:123456";
  assert.equal(stderrIsJournal(env("64769:123456"), id), true);
  assert.equal(stderrIsJournal(env("64769:999"), id), false, "stderr redirected elsewhere");
  assert.equal(stderrIsJournal(env(undefined), id), false);
  assert.equal(stderrIsJournal(env("garbage"), () => "garbage"), false);
  assert.equal(stderrIsJournal(env("1:2"), () => null), false);

  const journal = capture({ target: "auto", env: env("64769:123456"), stderrIdentity: id });
  assert.equal(journal.logger.target, "journal");
  journal.logger.notice("hi");
  assert.deepEqual(journal.lines, ["<5>hi"]);

  const sink = recordingSink();
  const sys = capture({ target: "auto", env: env(undefined), stderrIdentity: id, syslog: sink });
  assert.equal(sys.logger.target, "syslog");
  sys.logger.info("to syslog");
  assert.deepEqual(sink.sent, [[6, "to syslog"]]);
  assert.deepEqual(sys.lines, []);

  const none = capture({ target: "auto", env: env(undefined), stderrIdentity: id, syslog: null });
  assert.equal(none.logger.target, "stderr");
  none.logger.info("fallback");
  assert.deepEqual(none.lines, ["bpfpilot: fallback"]);
  const explicit = capture({ target: "syslog", syslog: null });
  assert.equal(explicit.logger.target, "stderr");
});

Deno.test("a failing writer or syslog never throws into the caller", () => {
  const logger = createLogger({
    target: "stderr",
    writer: () => {
      throw new Deno.errors.BrokenPipe("stderr closed");
    },
  });
  logger.error("still fine");
  const sys = createLogger({
    target: "syslog",
    syslog: {
      send: () => {
        throw new Error("socket gone");
      },
      close: () => {},
    },
  });
  sys.notice("still fine");
});

Deno.test("real process: default stderr writer, and JOURNAL_STREAM matched via fstat(2)", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-logger-" });
  const rx = new JournalReceiver();
  try {
    const logger = new URL("../../src/log/logger.ts", import.meta.url).href;
    const script = `
      import { createLogger } from ${JSON.stringify(logger)};
      const log = createLogger({ target: "auto", syslog: null });
      log.notice("auto went to " + log.target + " %n%s");
      createLogger({ target: "stderr", format: "json" }).warn("j");
    `;
    const run = async (journalStream: (errFile: string) => string | null, socket = rx.path) => {
      const errFile = `${dir}/stderr-${crypto.randomUUID()}`;
      Deno.writeTextFileSync(errFile, "");
      const stream = journalStream(errFile);
      const env: Record<string, string> = { BPFPILOT_JOURNAL_SOCKET: socket };
      if (stream) env.JOURNAL_STREAM = stream;
      const out = await new Deno.Command("sh", {
        args: ["-c", 'exec "$0" eval --no-check "$1" 2>"$2"', Deno.execPath(), script, errFile],
        env,
        clearEnv: false,
      }).output();
      assert.equal(out.code, 0);
      return Deno.readTextFileSync(errFile).split("\n");
    };
    const fileId = (path: string) => {
      const st = Deno.statSync(path);
      return `${st.dev}:${st.ino}`;
    };

    // Under systemd: native entries on the socket, nothing on the stream.
    const journal = await run(fileId);
    assert.equal(JSON.parse(journal[0]).msg, "j", "only the -s style logger wrote to stderr");
    const entry = await rx.waitFor((f) => /^auto went to/.test(f.MESSAGE), 5000);
    assert.equal(entry.MESSAGE, "auto went to journal %n%s");
    assert.equal(entry.PRIORITY, "5");
    assert.equal(entry.SYSLOG_IDENTIFIER, "bpfpilot");
    // journald gone: one warning, then the record on the stream with its priority prefix.
    const gone = await run(fileId, `${dir}/no-such-socket`);
    assert.match(gone[0], /^<4>cannot log to the journal \(sending to .*no-such-socket: No such/);
    assert.equal(gone[1], "<5>auto went to journal %n%s");
    const other = await run(() => "1:1");
    assert.equal(other[0], "bpfpilot: auto went to stderr %n%s");
    const rec = JSON.parse(other[1]);
    assert.equal(rec.level, "warning");
    assert.equal(rec.msg, "j");
    assert.equal(rx.entries.length, 1, "only the journal run reached the socket");
  } finally {
    rx.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("journal: structured entries; a failing socket costs one warning, not one per record", () => {
  const sent: Record<string, string>[] = [];
  let down: string | null = null;
  const journal = {
    send(datagram: Uint8Array) {
      if (down) return down;
      const fields: Record<string, string> = {};
      for (const [k, v] of decodeJournalEntry(datagram)) fields[k] = new TextDecoder().decode(v);
      sent.push(fields);
      return null;
    },
    close() {},
  };
  const { logger, lines } = capture({ target: "journal", journal, ...UNDER_SYSTEMD });
  assert.equal(logger.target, "journal");
  const tuner = logger.child({ tuner: "tcp_buffer" });
  tuner.info("two\nlines", { event: "changed", sysctl: "net.ipv4.tcp_rmem", to: [1, 2, 3] });
  assert.deepEqual(sent, [{
    MESSAGE: "two\nlines",
    PRIORITY: "6",
    SYSLOG_IDENTIFIER: "bpfpilot",
    SYSLOG_FACILITY: "3",
    BPFPILOT_TUNER: "tcp_buffer",
    MESSAGE_ID: MESSAGE_IDS.changed,
    BPFPILOT_SYSCTL: "net.ipv4.tcp_rmem",
    BPFPILOT_TO: "1 2 3",
  }]);
  assert.deepEqual(lines, []);

  down = "sending to /run/systemd/journal/socket: Connection refused";
  for (let i = 0; i < 3; i++) logger.notice(`lost ${i}`);
  assert.deepEqual(lines, [
    "<4>cannot log to the journal (sending to /run/systemd/journal/socket: Connection " +
    "refused); logging to stderr until it answers again event=log_fallback",
    "<5>lost 0",
    "<5>lost 1",
    "<5>lost 2",
  ]);
  down = null;
  logger.error("back");
  assert.deepEqual(sent.slice(1).map((f) => [f.MESSAGE, f.PRIORITY, f.MESSAGE_ID]), [
    ["back", "3", undefined],
    [
      "logging to the journal again; 3 record(s) went to stderr meanwhile",
      "5",
      MESSAGE_IDS.log_fallback,
    ],
  ]);
  assert.equal(lines.length, 4);
});

Deno.test("journal asked for without a socket or a journal stream: plain stderr", () => {
  const { logger, lines } = capture({ target: "journal", env: () => undefined });
  assert.equal(logger.target, "stderr");
  logger.info("x");
  assert.deepEqual(lines, ["bpfpilot: x"]);
});
