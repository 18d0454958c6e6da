/**
 * The file work of a background fold (Journal, "Folding in the background"): what waits for the
 * disk (writing and fsyncing a temp file, fsyncing the directory, copying the log's tail, removing
 * a replaced file) runs in the runtime's blocking pool, so the daemon's main thread, and the
 * events it handles, never wait for it. Only the renames run on the main thread, under
 * `state.lock`. No step here changes what a reader sees: that is the renames' job.
 */
import { utf8 } from "./journal_format.ts";

/** A temp file of the state directory (a name removeStaleTemps knows) with `pid` in it. */
export function tempName(dir: string, prefix: string, what = ""): string {
  return `${dir}/${prefix}${Deno.pid}-${what}${crypto.randomUUID().slice(0, 8)}`;
}

async function writeAll(f: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await f.write(bytes.subarray(done));
}

/** Characters of the text encoded and written at a time (journal_format.ts statePieces). */
const SLICE_CHARS = 32 * 1024;

/**
 * The concatenation of `pieces` in a new temp file (0600), fsynced; its path, and the longest the
 * main thread spent encoding one slice of it (ms). Slices of ~32 KB are encoded on the main thread
 * one at a time, each written in the pool before the next: the events run in between. Nothing is
 * left behind on an error.
 */
export async function writeSyncedTemp(
  dir: string,
  prefix: string,
  pieces: readonly string[],
): Promise<{ path: string; longestSliceMs: number }> {
  const path = tempName(dir, prefix);
  const f = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  let longestSliceMs = 0;
  try {
    for (let i = 0; i < pieces.length;) {
      const t0 = performance.now();
      const slice: string[] = [];
      for (let chars = 0; i < pieces.length && chars < SLICE_CHARS; i++) {
        slice.push(pieces[i]);
        chars += pieces[i].length;
      }
      const bytes = utf8(slice.join(""));
      longestSliceMs = Math.max(longestSliceMs, performance.now() - t0);
      await writeAll(f, bytes);
    }
    await f.sync();
  } catch (err) {
    f.close();
    await removeQuietly(path);
    throw err;
  }
  f.close();
  return { path, longestSliceMs };
}

/** fsync of directory `dir` (the renames in it durable). */
export async function fsyncDirInBackground(dir: string): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

export async function removeQuietly(path: string | null): Promise<void> {
  if (path === null) return;
  try {
    await Deno.remove(path);
  } catch { /* gone already, or left to removeStaleTemps */ }
}

/**
 * A second name for `path` (a temp name), so that renaming another file over it does not free its
 * blocks on the main thread (the last name gone and no file open: the rename itself frees them, a
 * synchronous discard on a `discard` mount): they are freed when the second name is removed, in
 * the pool. Null when there is no file at `path` or the link fails (then nothing is kept).
 */
export function keepBlocks(dir: string, prefix: string, path: string): string | null {
  const link = tempName(dir, prefix, "old-");
  try {
    Deno.linkSync(path, link);
    return link;
  } catch {
    return null;
  }
}

/**
 * Appends the complete lines of the log at `path` from byte `from` on to `out` (at its end);
 * returns the offset just past them, or null when the file at `path` is not inode `ino` any more.
 */
export async function copyLines(
  path: string,
  ino: number,
  from: number,
  out: Deno.FsFile,
): Promise<number | null> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
  try {
    const st = await f.stat();
    if ((st.ino ?? 0) !== ino) return null;
    if (st.size <= from) return from;
    const buf = new Uint8Array(st.size - from);
    await f.seek(from, Deno.SeekMode.Start);
    let got = 0;
    while (got < buf.length) {
      const n = await f.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    const end = buf.subarray(0, got).lastIndexOf(0x0a) + 1;
    await writeAll(out, buf.subarray(0, end));
    return from + end;
  } finally {
    f.close();
  }
}

/** The same on the main thread, for the few records appended during the last copy (no fsync). */
export function copyLinesSync(path: string, from: number, to: number, out: Deno.FsFile): void {
  if (to <= from) return;
  const f = Deno.openSync(path, { read: true });
  try {
    const buf = new Uint8Array(to - from);
    f.seekSync(from, Deno.SeekMode.Start);
    for (let got = 0; got < buf.length;) {
      const n = f.readSync(buf.subarray(got));
      if (n === null) throw new Error(`${path} ended before byte ${to}`);
      got += n;
    }
    for (let done = 0; done < buf.length;) done += out.writeSync(buf.subarray(done));
  } finally {
    f.close();
  }
}
