/**
 * The journal's files: names in the state directory, errors that say what to fix, the state
 * file read safely (regular files only, bounded), atomic replacement, the lock.
 */
import { JournalError } from "./journal_types.ts";
import { utf8 } from "./journal_format.ts";

export const STATE_FILE = "state.json";
export const LOG_FILE = "state.log";
export const LOCK_FILE = "state.lock";
export const DAEMON_LOCK_FILE = "daemon.lock";
export const TEMP_PREFIX = ".state.json.tmp-";
export const LOG_TEMP_PREFIX = ".state.log.tmp-";

// ---------------------------------------------------------------------------------------------
// Errors

function describeFsError(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (err instanceof Deno.errors.NotCapable) return "Deno needs --allow-all (-A)";
  switch (code) {
    case "ENOSPC":
      return "the disk is full";
    case "EDQUOT":
      return "the disk quota is exhausted";
    case "EROFS":
      return "the filesystem is read-only";
    case "EACCES":
    case "EPERM":
      return "permission denied (bpfpilot must run as root to use its state directory)";
    case "ENOTDIR":
      return "a path component is not a directory";
    case "EISDIR":
      return "it is a directory";
    case "EIO":
      return "the disk reported an I/O error";
  }
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s*\(os error \d+\)/, "").replace(/:\s*\w+ '[^']*'$/, "");
}

export function ioError(action: string, path: string, err: unknown): JournalError {
  if (err instanceof JournalError) return err;
  return new JournalError(
    "io",
    path,
    `cannot ${action} ${path}: ${describeFsError(err)}; ` +
      `fix that (root, free space, a writable directory) and retry`,
    { cause: err },
  );
}

// ---------------------------------------------------------------------------------------------
// Files

/** Far above any real journal (records are pruned and capped); a bigger file is not ours. */
export const MAX_STATE_BYTES = 16 * 1024 * 1024;

/**
 * The state file's text, or null when absent. Only a regular file is read (a FIFO would hang the
 * daemon, a device would never end), checked again after opening, and at most MAX_STATE_BYTES.
 */
export function readStateText(file: string): string | null {
  let f: Deno.FsFile;
  try {
    const before = Deno.lstatSync(file);
    if (before.isDirectory) throw ioError("read", file, { code: "EISDIR" });
    if (!before.isFile) {
      throw new JournalError(
        "corrupt",
        file,
        `${file} is not a regular file (a symlink, FIFO or device); bpfpilot does not read it. ` +
          `Move it away (the journal is recreated empty) and check who put it there`,
      );
    }
    f = Deno.openSync(file, { read: true });
    const after = f.statSync();
    if (!after.isFile || after.ino !== before.ino || after.dev !== before.dev) {
      f.close();
      throw new JournalError("corrupt", file, `${file} was replaced while being opened; retry`);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw ioError("read", file, err);
  }
  try {
    // Sized by fstat, grown only if the file grows meanwhile, never past the cap.
    let buf = new Uint8Array(Math.min((f.statSync().size ?? 0) + 1, MAX_STATE_BYTES + 1));
    let used = 0;
    for (;;) {
      if (used === buf.length) {
        const bigger = new Uint8Array(Math.min(buf.length * 2, MAX_STATE_BYTES + 1));
        bigger.set(buf);
        buf = bigger;
      }
      const n = f.readSync(buf.subarray(used));
      if (n === null || n === 0) break;
      used += n;
      if (used > MAX_STATE_BYTES) {
        throw new JournalError(
          "corrupt",
          file,
          `${file} is larger than ${MAX_STATE_BYTES} bytes, far more than bpfpilot ever writes; ` +
            `move it away and check who wrote it`,
        );
      }
    }
    return new TextDecoder().decode(buf.subarray(0, used));
  } catch (err) {
    throw ioError("read", file, err);
  } finally {
    f.close();
  }
}

export function fsyncDir(dir: string): void {
  const d = Deno.openSync(dir, { read: true });
  try {
    d.syncSync();
  } finally {
    d.close();
  }
}

export function writeAtomically(dir: string, file: string, text: string): void {
  const temp = `${dir}/${TEMP_PREFIX}${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  let out: Deno.FsFile | undefined;
  try {
    out = Deno.openSync(temp, { write: true, createNew: true, mode: 0o600 });
    const bytes = utf8(text);
    for (let done = 0; done < bytes.length;) done += out.writeSync(bytes.subarray(done));
    out.syncSync();
    out.close();
    out = undefined;
    Deno.renameSync(temp, file);
  } catch (err) {
    try {
      out?.close();
    } catch { /* already failing */ }
    try {
      Deno.removeSync(temp);
    } catch { /* never created */ }
    throw ioError("write", file, err);
  }
  try {
    fsyncDir(dir);
  } catch (err) {
    throw ioError("flush the directory of", file, err);
  }
}

/** `state.lock` of `dir`, opened and exclusively locked (closing it drops the flock). */
export function takeLock(dir: string): Deno.FsFile {
  const path = `${dir}/${LOCK_FILE}`;
  let lock: Deno.FsFile;
  try {
    lock = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
  } catch (err) {
    throw ioError("lock", path, err);
  }
  try {
    lock.lockSync(true);
  } catch (err) {
    lock.close();
    throw ioError("lock", path, err);
  }
  return lock;
}

export function withLock<T>(dir: string, fn: () => T): T {
  const lock = takeLock(dir);
  try {
    return fn();
  } finally {
    lock.close(); // closing drops the flock
  }
}

/**
 * Removes the temp files a process left behind, except those of `livePid` (the daemon running
 * now, or null), whose background fold may be using them (journal_fold.ts: the pid is in the name).
 */
export function removeStaleTemps(dir: string, livePid: number | null = null): void {
  for (const item of Deno.readDirSync(dir)) {
    const prefix = [TEMP_PREFIX, LOG_TEMP_PREFIX].find((p) => item.name.startsWith(p));
    if (item.isFile && prefix !== undefined) {
      if (livePid && item.name.startsWith(`${prefix}${livePid}-`)) continue;
      try {
        Deno.removeSync(`${dir}/${item.name}`);
      } catch { /* another cleaner won */ }
    }
  }
}

export function compactTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z").replaceAll("-", "").replaceAll(":", "");
}

export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
