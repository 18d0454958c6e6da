/**
 * The background daemon's pid file, in its runtime directory (`/run/bpfpilot`, or the state
 * directory of a daemon given its own), so `kill $(cat ...)` stops the right one of two daemons.
 * Written to a fresh temp file and renamed into place (never through a file someone planted).
 */
export const PID_FILE_NAME = "bpfpilot.pid";

export function writePidFile(dir: string, pid = Deno.pid): string {
  const path = `${dir.replace(/\/+$/, "")}/${PID_FILE_NAME}`;
  const temp = `${path}.tmp-${pid}`;
  try {
    Deno.removeSync(temp);
  } catch {
    // none left over
  }
  const f = Deno.openSync(temp, { write: true, createNew: true, mode: 0o644 });
  try {
    f.writeSync(new TextEncoder().encode(`${pid}\n`));
  } finally {
    f.close();
  }
  Deno.renameSync(temp, path);
  return path;
}

/** Removes the pid file if it still names `pid` (a newer daemon's file is left alone). */
export function removePidFile(path: string, pid = Deno.pid): void {
  try {
    if (Deno.readTextFileSync(path).trim() === String(pid)) Deno.removeSync(path);
  } catch {
    // gone already
  }
}
