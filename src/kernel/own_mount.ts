/**
 * A pseudo file system this process mounts (cgroup2 on a `-c` directory, tracefs) and unmounts
 * on the way out: only that mount, never whatever the path shows by then.
 */
import { cstr } from "../libbpf/cstr.ts";
import { errno, lib } from "../libbpf/runtime.ts";

const MNT_DETACH = 2;
const UMOUNT_NOFOLLOW = 8;
const O_PATH = 0o10000000;
const O_DIRECTORY = 0o200000;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;

export interface OwnMount {
  readonly dir: string;
  /** Unmounts it (lazily, so a busy mount cannot fail it); once. */
  release(): void;
}

/**
 * mount(2) of `fstype` on `dir`; the errno when the kernel refused. The mount is remembered by
 * an O_PATH descriptor of its root, and release() unmounts through /proc/self/fd: a directory
 * renamed or replaced by a symlink in the meantime (by whoever owns its parent) cannot steer the
 * unmount onto another mount.
 */
export function mountOwn(source: string, dir: string, fstype: string): OwnMount | number {
  const { libc } = lib();
  if (libc.mount(cstr(source), cstr(dir), cstr(fstype), 0n, null) !== 0) return errno();
  const root = libc.open(cstr(dir), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  let mounted = true;
  return {
    dir,
    release() {
      if (!mounted) return;
      mounted = false;
      if (root < 0) {
        libc.umount2(cstr(dir), MNT_DETACH | UMOUNT_NOFOLLOW); // no descriptor (EMFILE): by path
        return;
      }
      libc.umount2(cstr(`/proc/self/fd/${root}`), MNT_DETACH);
      libc.close(root);
    },
  };
}
