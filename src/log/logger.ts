/**
 * bpfpilot's logger: five levels, text or JSON lines, to stderr, the systemd journal or syslog.
 *
 * - stderr, text: `bpfpilot: <msg> key=value ...`, one line per line of the message.
 * - json: one object per record, `{"ts", "level", "msg", ...fields}`; a field named like a core
 *   key is kept as `field_<name>`. Multi-line messages stay one record (JSON escapes newlines).
 * - journal: one native-protocol entry per record on journald's socket, with structured fields
 *   (journal_fields.ts). While the socket fails (journald restarting, absent), records go to
 *   stderr, with `<N>` sd-daemon(3) priority prefixes when stderr is the journal stream; one
 *   notice when that starts and one when the socket answers again, never one per record.
 * - syslog: ident "bpfpilot", facility daemon, each line a record (see syslog.ts); falls back to
 *   stderr when no syslog is reachable.
 * - auto: journal when JOURNAL_STREAM names our stderr (we run under systemd), else syslog.
 * Control characters in text output are escaped as \xNN so a logged process name cannot forge
 * lines or drive a terminal. Logging never throws.
 */

import { openSyslog, type SyslogSink } from "./syslog.ts";
import { escapeControls, HAS_CONTROL, jsonSafe } from "./safe_text.ts";
import { EVENT_FIELD, journalFields, type MessageKind } from "./journal_fields.ts";
import { encodeJournalEntry } from "./journal_protocol.ts";
import {
  DEFAULT_JOURNAL_SOCKET,
  JOURNAL_SOCKET_ENV,
  type JournalSink,
  openJournalSocket,
} from "./journal_socket.ts";

export type LogLevel = "error" | "warning" | "notice" | "info" | "debug";
export const LOG_TARGETS = ["auto", "journal", "syslog", "stderr"] as const;
export type LogTarget = typeof LOG_TARGETS[number];
export type LogFormat = "text" | "json";
/**
 * A record's structured fields; `event` names its kind (the journal's MESSAGE_ID, see
 * journal_fields.ts).
 */
export type LogFields = { [EVENT_FIELD]?: MessageKind } & Record<string, unknown>;

/** syslog(3)/sd-daemon(3) priorities. */
export const LOG_PRIORITY: Readonly<Record<LogLevel, number>> = {
  error: 3,
  warning: 4,
  notice: 5,
  info: 6,
  debug: 7,
};

export interface LoggerOptions {
  target?: LogTarget;
  format?: LogFormat;
  /** Emit debug records. */
  debug?: boolean;
  /**
   * Append record fields as key=value to text lines (default true). The daemon turns this off
   * outside debug so its lines keep bpftune's exact shape; JSON always carries the fields.
   */
  textFields?: boolean;
  /** Receives each stderr/journal line without its newline; default: synchronous stderr. */
  writer?: (line: string) => void;
  /** Syslog sink to use; null means "unavailable". Default: opens the system logger. */
  syslog?: SyslogSink | null;
  /**
   * Journal socket to use; null means "unavailable". Default: journald's native socket
   * (BPFPILOT_JOURNAL_SOCKET overrides its path).
   */
  journal?: JournalSink | null;
  /** Environment lookup (JOURNAL_STREAM, BPFPILOT_JOURNAL_SOCKET); default Deno.env.get. */
  env?: (name: string) => string | undefined;
  /** "dev:ino" of stderr, or null; default fstat(2). */
  stderrIdentity?: () => string | null;
  /** Clock for JSON timestamps. */
  now?: () => Date;
}

export interface Logger {
  /** Where records actually go (after auto-detection and fallback). */
  readonly target: "stderr" | "journal" | "syslog";
  readonly format: LogFormat;
  readonly debugEnabled: boolean;
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  notice(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every record; shares the output. */
  child(fields: LogFields): Logger;
  /** Closes the syslog connection, if any. */
  close(): void;
}

const RESERVED = new Set(["ts", "level", "msg"]);

function defaultWriter(): (line: string) => void {
  const encoder = new TextEncoder();
  return (line) => {
    const bytes = encoder.encode(`${line}\n`);
    for (let done = 0; done < bytes.length;) {
      done += Deno.stderr.writeSync(bytes.subarray(done));
    }
  };
}

function defaultStderrIdentity(): string | null {
  try {
    // The open file behind descriptor 2 (a socket's inode under journald).
    const st = Deno.statSync("/proc/self/fd/2");
    return `${st.dev}:${st.ino}`;
  } catch {
    return null;
  }
}

function defaultEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** True when systemd connected our stderr to the journal (JOURNAL_STREAM = "dev:ino" of fd 2). */
export function stderrIsJournal(
  env: (name: string) => string | undefined = defaultEnv,
  stderrIdentity: () => string | null = defaultStderrIdentity,
): boolean {
  const stream = env("JOURNAL_STREAM");
  if (!stream || !/^\d+:\d+$/.test(stream)) return false;
  return stream === stderrIdentity();
}

function fieldText(value: unknown): string {
  if (typeof value === "string") {
    return /^[^\s"=\\]+$/.test(value) && !HAS_CONTROL.test(value) ? value : JSON.stringify(value);
  }
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
    return String(value);
  }
  if (value === undefined || value === null) return String(value);
  if (value instanceof Error) return JSON.stringify(value.message);
  return jsonSafe(value);
}

function textFields(fields: LogFields): string {
  const keys = Object.keys(fields);
  if (keys.length === 0) return "";
  return " " + keys.map((k) => `${escapeControls(k)}=${fieldText(fields[k])}`).join(" ");
}

function jsonRecord(ts: Date, level: LogLevel, msg: string, fields: LogFields): string {
  const record: Record<string, unknown> = { ts: ts.toISOString(), level, msg };
  for (const [key, value] of Object.entries(fields)) {
    record[RESERVED.has(key) ? `field_${key}` : key] = value;
  }
  return jsonSafe(record);
}

/** Lines of a message as separate records; trailing newlines do not make empty records. */
function messageLines(msg: string): string[] {
  return String(msg).replace(/(\r?\n)+$/, "").split(/\r?\n/).map(escapeControls);
}

interface Output {
  target: "stderr" | "journal" | "syslog";
  format: LogFormat;
  debug: boolean;
  emit(level: LogLevel, msg: string, fields: LogFields): void;
  close(): void;
}

function createOutput(opts: LoggerOptions): Output {
  const format = opts.format ?? "text";
  const now = opts.now ?? (() => new Date());
  const env = opts.env ?? defaultEnv;
  const streamIsJournal = stderrIsJournal(env, opts.stderrIdentity);
  let target = opts.target ?? "auto";
  if (target === "auto") target = streamIsJournal ? "journal" : "syslog";
  let sink: SyslogSink | null = null;
  if (target === "syslog") {
    sink = opts.syslog !== undefined ? opts.syslog : openSyslog();
    if (!sink) target = "stderr";
  }
  let journal: JournalSink | null = null;
  if (target === "journal") {
    journal = opts.journal !== undefined
      ? opts.journal
      : openJournalSocket(env(JOURNAL_SOCKET_ENV) || DEFAULT_JOURNAL_SOCKET);
    if (!journal && !streamIsJournal) target = "stderr";
  }
  const write = opts.writer ?? defaultWriter();
  const resolved = target;
  // The journal's stream takes priorities as `<N>` prefixes; -s keeps bpftune's plain lines.
  const prefixed = resolved === "journal" && streamIsJournal;

  const records = (level: LogLevel, msg: string, fields: LogFields): string[] =>
    format === "json"
      ? [jsonRecord(now(), level, msg, fields)]
      : messageLines(msg).map((line) =>
        opts.textFields === false ? line : line + textFields(fields)
      );

  const toStream = (level: LogLevel, msg: string, fields: LogFields) => {
    for (const record of records(level, msg, fields)) {
      if (prefixed) write(`<${LOG_PRIORITY[level]}>${record}`);
      else if (format === "json" || /^bpfpilot /.test(record)) write(record); // not "bpfpilot: bpfpilot started"
      else write(`bpfpilot: ${record}`);
    }
  };

  /** Records that went to stderr since the journal socket last failed. */
  let missed = 0;
  const entry = (level: LogLevel, message: string, fields: LogFields) =>
    encodeJournalEntry(journalFields({ priority: LOG_PRIORITY[level], message, fields }));
  const toJournal = (socket: JournalSink, level: LogLevel, msg: string, fields: LogFields) => {
    const failure = socket.send(entry(level, msg, fields));
    if (failure === null) {
      if (missed > 0) {
        socket.send(entry(
          "notice",
          `logging to the journal again; ${missed} record(s) went to stderr meanwhile`,
          { event: "log_fallback" },
        ));
        missed = 0;
      }
      return;
    }
    if (missed++ === 0) {
      toStream(
        "warning",
        `cannot log to the journal (${failure}); logging to stderr until it answers again`,
        { event: "log_fallback" },
      );
    }
    toStream(level, msg, fields);
  };

  return {
    target: resolved,
    format,
    debug: opts.debug === true,
    emit(level, msg, fields) {
      try {
        if (journal) toJournal(journal, level, msg, fields);
        else if (resolved === "syslog") {
          for (const record of records(level, msg, fields)) sink!.send(LOG_PRIORITY[level], record);
        } else toStream(level, msg, fields);
      } catch {
        // A closed stderr or a dead syslog socket must not take the daemon down.
      }
    },
    close() {
      sink?.close();
      journal?.close();
    },
  };
}

function makeLogger(out: Output, base: LogFields): Logger {
  const log = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (level === "debug" && !out.debug) return;
    out.emit(level, msg, fields ? { ...base, ...fields } : base);
  };
  return {
    target: out.target,
    format: out.format,
    debugEnabled: out.debug,
    log,
    error: (msg, fields) => log("error", msg, fields),
    warn: (msg, fields) => log("warning", msg, fields),
    notice: (msg, fields) => log("notice", msg, fields),
    info: (msg, fields) => log("info", msg, fields),
    debug: (msg, fields) => log("debug", msg, fields),
    child: (fields) => makeLogger(out, { ...base, ...fields }),
    close: () => out.close(),
  };
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return makeLogger(createOutput(opts), {});
}
