/**
 * systemd's native journal protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/): one datagram
 * per entry; each field is `NAME=value\n`, or, when the value holds a newline (which would end
 * the simple form early), `NAME\n`, the value's length as a little-endian u64, the value, `\n`.
 */

/** A field of an entry: its name and its text (UTF-8) or bytes. */
export type JournalField = readonly [name: string, value: string | Uint8Array];

export class JournalFieldError extends Error {}

/**
 * journald's rule for fields a client may send: A-Z, 0-9 and _, at most 64 characters, starting
 * with a letter (names starting with _ are journald's own trusted fields; a digit is refused).
 */
const FIELD_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

export function isValidFieldName(name: string): boolean {
  return FIELD_NAME.test(name);
}

const encoder = new TextEncoder();
const NEWLINE = 0x0a;

/** The datagram for one entry; throws JournalFieldError on a name journald would refuse. */
export function encodeJournalEntry(fields: Iterable<JournalField>): Uint8Array {
  const parts: { name: Uint8Array; value: Uint8Array; binary: boolean }[] = [];
  let size = 0;
  for (const [name, value] of fields) {
    if (!isValidFieldName(name)) {
      throw new JournalFieldError(
        `invalid journal field name ${JSON.stringify(name)}: A-Z, 0-9 and _ only, starting ` +
          "with a letter, at most 64 characters",
      );
    }
    const bytes = typeof value === "string" ? encoder.encode(value) : value;
    const binary = bytes.includes(NEWLINE);
    parts.push({ name: encoder.encode(name), value: bytes, binary });
    // NAME=value\n, or NAME\n + 8-byte length + value + \n
    size += name.length + 1 + bytes.length + 1 + (binary ? 8 : 0);
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const { name, value, binary } of parts) {
    out.set(name, at);
    at += name.length;
    if (binary) {
      out[at++] = NEWLINE;
      view.setBigUint64(at, BigInt(value.length), true);
      at += 8;
    } else {
      out[at++] = 0x3d; // '='
    }
    out.set(value, at);
    at += value.length;
    out[at++] = NEWLINE;
  }
  return out;
}

/**
 * The fields of one datagram, in order (repeated names stay repeated); throws on a malformed
 * one. The reverse of encodeJournalEntry, for tests and receivers.
 */
export function decodeJournalEntry(datagram: Uint8Array): [string, Uint8Array][] {
  const decoder = new TextDecoder();
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const out: [string, Uint8Array][] = [];
  let at = 0;
  while (at < datagram.length) {
    const end = datagram.indexOf(NEWLINE, at);
    if (end < 0) throw new JournalFieldError(`field at byte ${at} has no end`);
    const line = datagram.subarray(at, end);
    const eq = line.indexOf(0x3d);
    if (eq >= 0) {
      out.push([decoder.decode(line.subarray(0, eq)), line.slice(eq + 1)]);
      at = end + 1;
      continue;
    }
    if (end + 9 > datagram.length) throw new JournalFieldError(`field at byte ${at} is cut`);
    const length = Number(view.getBigUint64(end + 1, true));
    const start = end + 9;
    if (start + length >= datagram.length || datagram[start + length] !== NEWLINE) {
      throw new JournalFieldError(`binary field at byte ${at} has a wrong length`);
    }
    out.push([decoder.decode(line), datagram.slice(start, start + length)]);
    at = start + length + 1;
  }
  return out;
}
