/**
 * `-c <dir>`: the cgroup the cgroup programs (admin-override detection) attach to. It must be a
 * directory of a cgroup v2 hierarchy; an empty directory elsewhere gets cgroup2 mounted on it, as
 * bpftune does (unmounted again on exit). Anything else (a missing path, a file, a cgroup v1
 * hierarchy) would start the daemon with override detection silently off, so it is refused with
 * the reason.
 */
import { cstr } from "../libbpf/cstr.ts";
import { lib } from "../libbpf/runtime.ts";
import { mountOwn, type OwnMount } from "./own_mount.ts";

export class CgroupDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CgroupDirError";
  }
}

export interface MountEntry {
  point: string;
  fstype: string;
}

function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

/** The mount a path lives on (longest mount point that contains it; later mounts win). */
export function mountOf(path: string, mountinfo: string): MountEntry | null {
  let best: MountEntry | null = null;
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const point = unescape(line.slice(0, sep).split(" ")[4] ?? "");
    const fstype = line.slice(sep + 3).split(" ")[0];
    const inside = point === "/" || path === point || path.startsWith(point + "/");
    if (inside && (!best || point.length >= best.point.length)) best = { point, fstype };
  }
  return best;
}

const HINT = "give a cgroup v2 directory (e.g. /sys/fs/cgroup, or a child cgroup of it) or an " +
  "empty directory for bpfpilot to mount cgroup2 on";

/** "cgroup2": use it as is; "mount": an empty directory to mount cgroup2 on. */
export function checkCgroupDir(
  arg: string,
  mountinfo = () => Deno.readTextFileSync("/proc/self/mountinfo"),
): { path: string; action: "use" | "mount" } {
  if (arg === "") throw new CgroupDirError(`-c/--cgroup is an empty string; ${HINT}`);
  let real: string;
  let info: Deno.FileInfo;
  try {
    real = Deno.realPathSync(arg);
    info = Deno.statSync(real);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new CgroupDirError(`-c ${arg}: no such directory; ${HINT}`);
    }
    throw new CgroupDirError(`-c ${arg}: ${(e as Error).message.replace(/ \(os error.*$/, "")}`);
  }
  if (!info.isDirectory) throw new CgroupDirError(`-c ${arg} is not a directory; ${HINT}`);
  const mount = mountOf(real, mountinfo());
  if (mount?.fstype === "cgroup2") return { path: real, action: "use" };
  if (mount?.fstype === "cgroup") {
    throw new CgroupDirError(
      `-c ${arg} is in a cgroup v1 hierarchy; BPF cgroup programs need cgroup v2; ${HINT}`,
    );
  }
  if ([...Deno.readDirSync(real)].length > 0) {
    throw new CgroupDirError(
      `-c ${arg} is not a cgroup v2 directory (it is on ${
        mount ? `a ${mount.fstype}` : "an unknown"
      } file ` +
        `system) and not empty, so bpfpilot will not mount cgroup2 on it; ${HINT}`,
    );
  }
  return { path: real, action: "mount" };
}

/**
 * Mounts cgroup2 on an empty directory (what bpftune does with its -c); the daemon releases it
 * on exit (bpftune left it mounted).
 */
export function mountCgroup2(dir: string): OwnMount {
  const mount = mountOwn("none", dir, "cgroup2");
  if (typeof mount === "number") {
    throw new CgroupDirError(
      `cannot mount cgroup2 on ${dir} (errno ${mount}); mount it yourself with ` +
        `\`mount -t cgroup2 none ${dir}\`, or give an existing cgroup v2 directory`,
    );
  }
  return mount;
}

const CLONE_NEWNET = 0x40000000;
/** ioctl(NS_GET_NSTYPE) = _IO(0xb7, 0x3): the CLONE_NEW* type of a namespace file. */
const NS_GET_NSTYPE = 0xb703n;

/** True when `path` opens a network namespace (an nsfs file of type net). */
export function isNetnsFile(path: string): boolean {
  const { libc } = lib();
  const fd = libc.open(cstr(path), 0o2000000 /* O_CLOEXEC */);
  if (fd < 0) return false;
  try {
    return libc.ioctl(fd, NS_GET_NSTYPE, 0n) === CLONE_NEWNET;
  } finally {
    libc.close(fd);
  }
}
