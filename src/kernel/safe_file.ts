/**
 * Files a root process reads and writes where other accounts may have a say (a textfile
 * directory, a path given on the command line). Writes: the target must be absent or a regular
 * file (never a symlink, device or FIFO, which a rename would replace or a write would follow);
 * the content goes to a fresh temp file created exclusively (O_CREAT|O_EXCL, which never follows
 * a symlink) under a random name in the target's directory, is synced, then renamed over the
 * target. Reads: only a regular file (checked before opening, so a FIFO cannot hang us, and
 * again on the open file), at most `maxBytes`.
 */

export class SafeFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SafeFileError";
  }
}

function kindOf(info: Deno.FileInfo): string {
  if (info.isSymlink) return "a symbolic link";
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO";
  if (info.isCharDevice || info.isBlockDevice) return "a device";
  if (info.isSocket) return "a socket";
  return info.isFile ? "a regular file" : "not a regular file";
}

function describe(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "its directory does not exist";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.AlreadyExists) return "a file with the temporary name appeared";
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\s*\(os error \d+\).*$/, "");
}

function dirOf(path: string): string {
  const cut = path.lastIndexOf("/");
  return cut < 0 ? "." : cut === 0 ? "/" : path.slice(0, cut);
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Why `path` must not be replaced, or null when it is absent or a regular file. */
export function refuseTarget(path: string): string | null {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    return describe(e);
  }
  return info.isFile ? null : `it is ${kindOf(info)}; bpfpilot only replaces regular files`;
}

/** A temp name next to `path` that node_exporter's `*.prom` glob does not match. */
export function tempNameFor(path: string): string {
  const rnd = Array.from(crypto.getRandomValues(new Uint8Array(8)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${dirOf(path)}/.${baseOf(path)}.${rnd}.tmp`;
}

/** Writes `content` to `path` atomically; throws SafeFileError naming the cause. */
export function writeFileAtomic(path: string, content: string, mode = 0o644): void {
  const refused = refuseTarget(path);
  if (refused) throw new SafeFileError(refused);
  const tmp = tempNameFor(path);
  let created = false;
  try {
    const file = Deno.openSync(tmp, { write: true, createNew: true, mode });
    created = true;
    try {
      const bytes = new TextEncoder().encode(content);
      let off = 0;
      while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
      file.syncSync();
    } finally {
      file.close();
    }
    // Checked again just before the rename: a swap meanwhile is refused, not followed.
    const late = refuseTarget(path);
    if (late) throw new SafeFileError(late);
    Deno.renameSync(tmp, path);
    created = false;
  } catch (e) {
    if (created) {
      try {
        Deno.removeSync(tmp);
      } catch { /* gone already */ }
    }
    if (e instanceof SafeFileError) throw e;
    throw new SafeFileError(describe(e));
  }
}

/** Fails early when `path` could not be written (target kind, directory writable). */
export function checkWritable(path: string): void {
  const refused = refuseTarget(path);
  if (refused) throw new SafeFileError(refused);
  const tmp = tempNameFor(path);
  try {
    Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 }).close();
    Deno.removeSync(tmp);
  } catch (e) {
    throw new SafeFileError(describe(e));
  }
}

/**
 * The text of a regular file of at most `maxBytes` (symlinks to one are followed, as a user
 * naming a file expects). Throws SafeFileError naming the cause.
 */
export function readRegularFile(path: string, maxBytes: number): string {
  let before: Deno.FileInfo;
  try {
    before = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new SafeFileError("it does not exist");
    throw new SafeFileError(describe(e));
  }
  if (!before.isFile) throw new SafeFileError(`it is ${kindOf(before)}, not a regular file`);
  if ((before.size ?? 0) > maxBytes) {
    throw new SafeFileError(`it is larger than ${maxBytes} bytes`);
  }
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch (e) {
    throw new SafeFileError(describe(e));
  }
  try {
    const after = f.statSync();
    if (!after.isFile || after.ino !== before.ino || after.dev !== before.dev) {
      throw new SafeFileError("it was replaced while being opened");
    }
    const buf = new Uint8Array(maxBytes + 1);
    let used = 0;
    for (;;) {
      const n = f.readSync(buf.subarray(used));
      if (n === null || n === 0) break;
      used += n;
      if (used > maxBytes) throw new SafeFileError(`it is larger than ${maxBytes} bytes`);
    }
    return new TextDecoder().decode(buf.subarray(0, used));
  } catch (e) {
    if (e instanceof SafeFileError) throw e;
    throw new SafeFileError(describe(e));
  } finally {
    f.close();
  }
}
