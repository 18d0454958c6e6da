/**
 * This boot's identity: the kernel's random boot_id, new at every boot. What was learnt about
 * kernel state (probe results, network namespaces by inode and cookie, which both restart at
 * boot) holds only for the boot it was learnt in.
 */

export const BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id";

/** The boot_id (a UUID), or null when it cannot be read (no /proc). */
export function readBootId(file: string = BOOT_ID_FILE): string | null {
  try {
    const id = Deno.readTextFileSync(file).trim();
    return id === "" ? null : id;
  } catch {
    return null;
  }
}
