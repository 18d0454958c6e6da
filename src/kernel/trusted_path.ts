/**
 * Directories a root process may trust: a file in them can only have been put there by root (or
 * the process's own uid). The state directory (the journal rollback acts on) and the control
 * socket's directory must be such, or another account could forge the journal or swap the
 * socket. A directory is trusted when it and every directory above it (symlinks resolved) are
 * owned by root or this uid and not writable by group or others; a world-writable directory with
 * the sticky bit (/tmp) is allowed above, since others cannot rename or remove what is ours in it.
 */

export class UntrustedPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UntrustedPathError";
  }
}

export interface PathOwner {
  uid: number;
  mode: number;
  isDirectory: boolean;
  isSymlink: boolean;
}

/** lstat, reduced to what the checks need; null when absent. */
export type StatPath = (path: string) => PathOwner | null;

export const lstatPath: StatPath = (path) => {
  try {
    const i = Deno.lstatSync(path);
    return {
      uid: i.uid ?? -1,
      mode: i.mode ?? 0,
      isDirectory: i.isDirectory,
      isSymlink: i.isSymlink,
    };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
};

const STICKY = 0o1000;

function ancestors(path: string): string[] {
  const parts = path.split("/").filter((p) => p !== "");
  const out = ["/"];
  for (let i = 1; i <= parts.length; i++) out.push("/" + parts.slice(0, i).join("/"));
  return out;
}

function ownerOk(uid: number, self: number): boolean {
  return uid === 0 || uid === self;
}

/**
 * Throws UntrustedPathError (naming cause and fix) unless `dir` (an existing, absolute,
 * symlink-free path: pass Deno.realPathSync's result) is trusted. `what` names it in messages.
 */
export function checkTrustedDir(
  dir: string,
  what: string,
  stat: StatPath = lstatPath,
  self: number = Deno.uid() ?? 0,
): void {
  const info = stat(dir);
  if (info === null) throw new UntrustedPathError(`${what} ${dir} does not exist`);
  if (!info.isDirectory) {
    throw new UntrustedPathError(
      `${what} ${dir} is not a directory; give the path of a directory (it is created if absent)`,
    );
  }
  for (const p of ancestors(dir)) {
    const a = p === dir ? info : stat(p);
    if (a === null) throw new UntrustedPathError(`${what} ${dir}: ${p} vanished while checking`);
    const mine = p === dir;
    const writableByOthers = (a.mode & 0o022) !== 0;
    const fix = mine
      ? `run: chown root:root ${dir} && chmod 700 ${dir}, or choose another directory`
      : `choose a directory under a root-owned path such as /var/lib or /run`;
    if (!ownerOk(a.uid, self)) {
      throw new UntrustedPathError(
        `refusing ${what} ${dir}: ${p} is owned by uid ${a.uid}, so that user could forge or ` +
          `replace what bpfpilot keeps there; ${fix}`,
      );
    }
    if (writableByOthers && (mine || (a.mode & STICKY) === 0)) {
      throw new UntrustedPathError(
        `refusing ${what} ${dir}: ${p} is writable by ${
          (a.mode & 0o002) ? "every user" : "its group"
        } (mode ${(a.mode & 0o7777).toString(8).padStart(4, "0")}), so another account could ` +
          `forge or replace what bpfpilot keeps there; ${fix}`,
      );
    }
  }
}

/** Paths a state directory must never be: the root and the kernel's own file systems. */
export function forbiddenStateDir(real: string): string | null {
  if (real === "/") return "the root directory";
  for (const top of ["/proc", "/sys", "/dev"]) {
    if (real === top || real.startsWith(top + "/")) return `under ${top}`;
  }
  return null;
}
