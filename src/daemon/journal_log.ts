/**
 * The journal's append-only change log (`state.log` next to `state.json`): one JSON record per
 * line, so recording a change costs one small append (and one fdatasync when it must be durable
 * at once: a decision; the daemon's change records are synced later, see journal.ts) instead of
 * rewriting every entry. The journal folds the log into `state.json` now and then
 * (compaction) and replaces the log with an empty one (a background fold: with one holding the
 * records appended since its snapshot, journal.ts).
 *
 * Crash safety, by construction:
 *   - a record is one write(2) of a whole line; `kill -9` cannot split it. A power loss can leave
 *     a torn last line (no newline): it is never consumed, and the next writer (holding the
 *     journal's lock) cuts it off before appending. A torn record was never fsynced: the power
 *     loss that tore it also reset the sysctl it announced (journal.ts, "Durability").
 *   - records carry a sequence number; `state.json` says up to which one it includes, so a crash
 *     between writing a compacted `state.json` and emptying the log replays nothing twice.
 *   - the log is only ever replaced by rename, so readers detect a new log by its inode.
 *   - a power loss on a file system without ordered data (ext4 data=writeback, ext2) can leave a
 *     run of NUL bytes inside the log: its size was on disk, data appended at some offset was
 *     not, and data after that was (written back first). Every fdatasync covers everything
 *     appended before it and decisions are synced at once, so such a hole can only have held
 *     change records of the boot the power loss ended, whose sysctls were all reset with it.
 *     JSON never holds a NUL, so a line with one is what such a hole left: a run of NULs that
 *     starts a line before a whole record (an append that never reached the disk) is skipped and
 *     the record read; any other line with a NUL (pages are written back whole, so a hole can
 *     begin or end inside a record: its head before the NULs, its tail after them) holds no
 *     record and is skipped whole (LogTail.holes). Each hole is warned about once. A bad line
 *     without a NUL is still a corrupt log.
 */

import { STATX_INO, STATX_MTIME, STATX_SIZE, statxOrErrno } from "../kernel/statx.ts";

const encoder = new TextEncoder();

function dirOf(path: string): string {
  const at = path.lastIndexOf("/");
  return at < 0 ? "." : at === 0 ? "/" : path.slice(0, at);
}
const decoder = new TextDecoder();

/** What identifies one version of a file: a rename gives a new inode, an append a new size. */
export interface FileStamp {
  ino: number;
  size: number;
  mtimeMs: number;
}

export function stampOf(path: string): FileStamp | null {
  // statx(2), what the daemon runs every second: no FileInfo, and no exception for a file that is
  // not there (a journal that recorded nothing yet); on another error Deno.statSync says what.
  const r = statxOrErrno(path, true, STATX_INO | STATX_SIZE | STATX_MTIME);
  if (typeof r === "object") {
    const ms = Number(r.mtimeNs / 1_000_000n) + Number(r.mtimeNs % 1_000_000n) / 1e6;
    return { ino: Number(r.ino), size: r.size, mtimeMs: ms };
  }
  if (r === ENOENT || r === ENOTDIR) return null;
  try {
    const s = Deno.statSync(path);
    return { ino: s.ino ?? 0, size: s.size, mtimeMs: s.mtime?.getTime() ?? 0 };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

const ENOENT = 2, ENOTDIR = 20;

export function sameStamp(a: FileStamp | null, b: FileStamp | null): boolean {
  if (a === null || b === null) return a === b;
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** Complete lines from `offset` on, and where the next unread byte is (after the last newline). */
export interface LogTail {
  /** The inode read (a compaction replaces the log: a new inode). */
  ino: number;
  /** The file's size when read. */
  size: number;
  lines: string[];
  /** Offset just past the last complete line. */
  end: number;
  /** Bytes after `end` that do not end in a newline (a torn or in-progress record). */
  torn: number;
  /** Lines with NULs (see the header): leading runs cut from `lines`, lines skipped whole. */
  holes: LogHole[];
}

/** NUL bytes in a line: what a power loss left of records (see the header). */
export interface LogHole {
  /** File offsets: [start, end): the leading run, or the whole line when `whole`. */
  start: number;
  end: number;
  /** Its line, as an index in LogTail.lines (which has the rest of it past a leading run). */
  line: number;
  /**
   * No record can be read in the line: NULs other than a leading run, or nothing else. When
   * false, the rest is a record or the tail of one the hole cut (the journal tells them apart).
   */
  whole: boolean;
}

/** Reads the complete lines of `path` from byte `offset` on; null when the file is missing. */
export function readTail(path: string, offset: number): LogTail | null {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  try {
    const st = f.statSync();
    const size = st.size, ino = st.ino ?? 0;
    if (size <= offset) {
      return { ino, size, lines: [], end: Math.min(offset, size), torn: 0, holes: [] };
    }
    f.seekSync(offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(size - offset);
    for (let done = 0; done < buf.length;) {
      const n = f.readSync(buf.subarray(done));
      if (n === null) break;
      done += n;
    }
    const last = buf.lastIndexOf(0x0a);
    const complete = last < 0 ? 0 : last + 1;
    const body = buf.subarray(0, complete);
    const tail = { ino, size, end: offset + complete, torn: buf.length - complete };
    if (body.indexOf(0) >= 0) return { ...tail, ...linesPastHoles(body, offset) };
    const text = decoder.decode(body);
    const lines = text === "" ? [] : text.slice(0, -1).split("\n");
    return { ...tail, lines, holes: [] };
  } finally {
    f.close();
  }
}

/**
 * The lines of `body` (complete lines read at file offset `offset`), each without the NUL run
 * that starts it, if any, and the holes: those runs, and lines with any other NUL (whole).
 */
function linesPastHoles(body: Uint8Array, offset: number): { lines: string[]; holes: LogHole[] } {
  const lines: string[] = [];
  const holes: LogHole[] = [];
  for (let at = 0; at < body.length;) {
    const nl = body.indexOf(0x0a, at);
    let from = at;
    while (from < nl && body[from] === 0) from++;
    const rest = body.subarray(from, nl);
    const whole = from === nl || rest.indexOf(0) >= 0;
    if (from > at || whole) {
      holes.push({
        start: offset + at,
        end: offset + (whole ? nl : from),
        line: lines.length,
        whole,
      });
    }
    lines.push(whole ? "" : decoder.decode(rest));
    at = nl + 1;
  }
  return { lines, holes };
}

/**
 * Appends whole lines to the log, keeping the file open between appends (the daemon appends a
 * record or two per change: no open and close each time). The file is reopened by path whenever
 * the one the journal last read under its lock is another (a compaction, by this process or
 * another, replaced it) or none. It knows whether what it appended is on disk yet: appends that
 * were not fdatasync'ed are synced later (sync(), syncInBackground()), or made durable by a
 * compaction (markSynced()).
 */
export class LogAppender {
  #file: Deno.FsFile | null = null;
  #ino = -1;
  /** Where our last write ended (the file's offset now), -1 when not known. */
  #pos = -1;
  /** Appends made, and how many of the first ones are on disk (fdatasync'ed or compacted). */
  #appends = 0;
  #synced = 0;
  /** fdatasync calls made (each kind): what the tests and the bench count. */
  syncs = 0;
  /**
   * We created the log (no file at the path): its name is on disk only once the directory is
   * fsynced, which the next sync of our appends does too (without it a power loss could keep the
   * synced records and lose the name; a journaling file system commits the name with them, ext2 or
   * ext4 without a journal need not). The folds' renames fsync the directory themselves.
   */
  #nameOwed = false;

  constructor(readonly path: string) {}

  /** Whether an append of ours may not be on disk yet. */
  get unsynced(): boolean {
    return this.#synced < this.#appends;
  }

  /**
   * Appends `text` (whole lines) to the log, creating it 0600, after cutting it to `validEnd`
   * when a torn record lies beyond. `knownIno`: the inode of the log the caller read (null:
   * none). `knownSize`: the log's size as the caller saw it under the lock it holds now (null:
   * not known); when it is `validEnd` and our last write ended there, nothing lies beyond and the
   * offset is right: no fstat, no seek. `durable`: fdatasync before returning (which makes every
   * earlier append to this file durable too). Returns the new size and the inode written to.
   */
  append(
    text: string,
    durable: boolean,
    validEnd: number,
    knownIno: number | null,
    knownSize: number | null = null,
  ): { size: number; ino: number } {
    if (this.#file === null || knownIno === null || knownIno !== this.#ino) {
      // A file replaced by a compaction: what we appended to it is in the synced state.json.
      this.close();
      try {
        this.#file = Deno.openSync(this.path, {
          read: true,
          write: true,
          createNew: true,
          mode: 0o600,
        });
        this.#nameOwed = true;
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
        this.#file = Deno.openSync(this.path, { read: true, write: true });
      }
    }
    const f = this.#file;
    try {
      if (knownSize !== validEnd || this.#pos !== validEnd) {
        this.#pos = -1;
        const st = f.statSync();
        this.#ino = st.ino ?? 0;
        if (st.size > validEnd) f.truncateSync(validEnd);
        f.seekSync(validEnd, Deno.SeekMode.Start);
      }
      const bytes = encoder.encode(text);
      // One write(2) for the whole record batch: a process kill cannot leave half of it.
      for (let done = 0; done < bytes.length;) done += f.writeSync(bytes.subarray(done));
      this.#pos = validEnd + bytes.length;
      this.#appends++;
      if (durable) {
        f.syncDataSync();
        this.syncs++;
        this.#synced = this.#appends;
        this.#syncName();
      }
      return { size: this.#pos, ino: this.#ino };
    } catch (err) {
      this.close(); // opened again by path next time
      throw err;
    }
  }

  /**
   * fdatasync, now, when an append of ours may not be on disk: of the open log, else of the one
   * at the path (see syncInBackground).
   */
  sync(): void {
    if (!this.unsynced) return;
    const mark = this.#appends;
    const named = this.#nameOwed;
    this.#settle(mark, this.#file ? (this.#file.syncDataSync(), true) : syncAtPath(this.path));
    if (named) this.#syncName();
  }

  /** The directory fsynced, when we created the log and it was not yet (see #nameOwed). */
  #syncName(): void {
    if (!this.#nameOwed) return;
    const d = Deno.openSync(dirOf(this.path), { read: true });
    try {
      d.syncSync();
    } finally {
      d.close();
    }
    this.#nameOwed = false;
  }

  /**
   * The same off the main thread (the runtime's blocking pool): the log opened again by path, so
   * closing ours meanwhile cannot cut it short. Appends made while it runs stay unsynced.
   */
  async syncInBackground(): Promise<void> {
    if (!this.unsynced) return;
    const mark = this.#appends;
    const named = this.#nameOwed;
    this.#settle(mark, await syncAtPathInBackground(this.path));
    if (named) {
      const d = await Deno.open(dirOf(this.path), { read: true });
      try {
        await d.sync();
      } finally {
        d.close();
      }
      this.#nameOwed = false;
    }
  }

  /**
   * A sync (`synced`; false: there was no log at the path) covered our appends up to `mark`. The
   * file at the path holds our appends, or a compaction replaced it (or removed it under us), and
   * then the synced state.json holds them: settled either way, not an error every period.
   */
  #settle(mark: number, synced: boolean): void {
    if (synced) this.syncs++;
    this.#synced = Math.max(this.#synced, mark); // appends made meanwhile stay owed
  }

  /** Everything appended so far is on disk another way (a compaction's synced state.json). */
  markSynced(): void {
    this.#synced = this.#appends;
    this.#nameOwed = false; // the compaction replaced the log and fsynced the directory
  }

  /**
   * Closes the file (appends not on disk yet stay owed: sync() opens it again by path).
   * `renamedOver`: a fold renamed another log over ours, and fsyncs the directory itself.
   */
  close(renamedOver = false): void {
    if (renamedOver) this.#nameOwed = false;
    try {
      this.#file?.close();
    } catch { /* closed already */ }
    this.#file = null;
    this.#ino = -1;
    this.#pos = -1;
  }
}

/**
 * fdatasync of the file at `path`, opened again for it (it syncs the inode, whoever opened it);
 * false when there is none.
 */
function syncAtPath(path: string): boolean {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
  try {
    f.syncDataSync();
    return true;
  } finally {
    f.close();
  }
}

/** syncAtPath off the main thread. */
async function syncAtPathInBackground(path: string): Promise<boolean> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
  try {
    await f.syncData();
    return true;
  } finally {
    f.close();
  }
}

/** Replaces `path` by an empty file (through a rename: readers notice the new inode). */
export function replaceWithEmpty(dir: string, path: string, tempPrefix: string): void {
  const temp = `${dir}/${tempPrefix}${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const f = Deno.openSync(temp, { write: true, createNew: true, mode: 0o600 });
  f.close();
  try {
    Deno.renameSync(temp, path);
  } catch (err) {
    try {
      Deno.removeSync(temp);
    } catch { /* never mind */ }
    throw err;
  }
}
