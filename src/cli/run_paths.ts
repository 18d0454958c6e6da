/**
 * Validation of the daemon's path flags (-c, --netns, --state-dir, --control-socket, --cooldown):
 * a typo must be a usage error naming the fix, never a daemon that starts with a safety switched
 * off, a directory created in the wrong place, or a path silently changed.
 */
import { netnsInumOf, netnsKey } from "../kernel/netns.ts";
import { CgroupDirError, checkCgroupDir, isNetnsFile } from "../kernel/cgroup_dir.ts";
import { UserError } from "./errors.ts";

/** Deno turns bytes that are not UTF-8 into U+FFFD: such a path cannot be used faithfully. */
export function checkPathArg(flag: string, value: string): string {
  if (value === "") throw new UserError(`${flag} is an empty string; give a path`, 2);
  if (value.includes("\uFFFD")) {
    throw new UserError(
      `${flag} ${value}: the path contains bytes that are not UTF-8, which bpfpilot cannot pass ` +
        `on unchanged; rename it or use a path without them`,
      2,
    );
  }
  return value;
}

export function parseCooldown(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === "" ? NaN : Number(v);
  if (!Number.isFinite(n) || n < 0) {
    throw new UserError(`--cooldown must be a number of seconds >= 0, not '${v}'`, 2);
  }
  return n * 1000;
}

export function resolveNetns(arg: string): string {
  checkPathArg("--netns", arg);
  const path = arg.includes("/") ? arg : `/run/netns/${arg}`;
  let inum: bigint;
  try {
    inum = netnsInumOf(path);
  } catch {
    throw new UserError(
      `--netns ${arg}: no network namespace at ${path} (list them with 'ip netns list')`,
      2,
    );
  }
  if (!isNetnsFile(path)) {
    throw new UserError(
      `--netns ${arg}: ${path} is not a network namespace; give a name from 'ip netns list' ` +
        `or a namespace file such as /proc/PID/ns/net`,
      2,
    );
  }
  return netnsKey(inum);
}

/** The cgroup directory to attach to, and whether cgroup2 must be mounted on it first. */
export function resolveCgroup(arg: string): { path: string; mount: boolean } {
  checkPathArg("-c/--cgroup", arg);
  try {
    const r = checkCgroupDir(arg);
    return { path: r.path, mount: r.action === "mount" };
  } catch (e) {
    if (e instanceof CgroupDirError) throw new UserError(e.message, 2);
    throw e;
  }
}
