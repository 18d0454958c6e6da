/**
 * The state directory before the journal touches it: it must be a directory (created 0700 when
 * absent, unless the caller only reads, as `rollback` and `enable` do), never `/` or a kernel file
 * system, and trusted (see kernel/trusted_path.ts): a journal another account could write would
 * let it steer what root's rollback writes.
 */
import { checkTrustedDir, forbiddenStateDir, UntrustedPathError } from "../kernel/trusted_path.ts";

export class StateDirError extends Error {
  constructor(readonly kind: "missing" | "untrusted", message: string) {
    super(message);
    this.name = "StateDirError";
  }
}

/** A file-system failure; the journal words it (describeFsError) like its own. */
export class StateDirIoError extends Error {
  constructor(readonly action: string, readonly path: string, override readonly cause: unknown) {
    super(`cannot ${action} ${path}`);
    this.name = "StateDirIoError";
  }
}

function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    // A file where a parent should be: mkdir below reports it.
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw new StateDirIoError("inspect the state directory", path, e);
  }
}

/** Checks (and with `create`, makes) the state directory; returns its real path. */
export function prepareStateDir(dir: string, opts: { create: boolean }): string {
  if (dir === "") {
    throw new StateDirError("missing", "the state directory is an empty string; give a path");
  }
  const info = lstatOrNull(dir);
  if (info === null && !opts.create) {
    throw new StateDirError(
      "missing",
      `state directory ${dir} does not exist, so nothing was ever recorded there; check the ` +
        `path (a daemon given no --state-dir uses /var/lib/bpfpilot)`,
    );
  }
  if (info !== null && !info.isDirectory && !info.isSymlink) {
    throw new StateDirError(
      "untrusted",
      `state directory ${dir} is a file, not a directory; give the path of a directory ` +
        `(bpfpilot creates it when absent)`,
    );
  }
  if (info === null) {
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new StateDirIoError("create the state directory", dir, e);
    }
  }
  let real: string;
  try {
    real = Deno.realPathSync(dir);
  } catch (e) {
    throw new StateDirIoError("resolve the state directory", dir, e);
  }
  const forbidden = forbiddenStateDir(real);
  if (forbidden) {
    throw new StateDirError(
      "untrusted",
      `refusing state directory ${dir}: it is ${forbidden}; bpfpilot keeps several files there. ` +
        `Use a directory of its own, e.g. /var/lib/bpfpilot`,
    );
  }
  try {
    checkTrustedDir(real, "state directory");
  } catch (e) {
    if (e instanceof UntrustedPathError) throw new StateDirError("untrusted", e.message);
    throw e;
  }
  return real;
}
