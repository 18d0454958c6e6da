/**
 * Journal records of a namespace whose inode number now belongs to another namespace. A record
 * names its namespace by inode ("ns:<inum>") and, on kernels with SO_NETNS_COOKIE (5.14+), by
 * cookie too: once a namespace dies its inode is reused quickly, its cookie never. A record whose
 * inode exists with another cookie is for a dead namespace: it is dropped, never applied to the
 * new one (rollback would write an old value into a stranger's namespace, an old override would
 * silence tuning of a new container). Records also carry the boot they were made in: after a
 * reboot inodes and cookies restart, and every record of an earlier boot's namespace is dead.
 */
import { parseNetnsKey } from "../kernel/netns.ts";
import type { Journal, NetnsCookieOf } from "./journal.ts";
import type { LogLike } from "../tuning/tuner.ts";

/**
 * True when a record with cookie `recorded` is for another namespace than the live one at its
 * inode, whose cookie is `live`. Without a cookie on either side (old records, 5.10, a namespace
 * that is gone) only the inode is known: false, and the caller decides as before cookies. Live
 * cookie unknown now (undefined): false too, not known to be another namespace's.
 */
export function recordIsForReusedInode(
  recorded: string | undefined,
  live: bigint | null | undefined,
): boolean {
  return recorded !== undefined && live !== null && live !== undefined &&
    String(live) !== recorded;
}

/**
 * True when a record of a namespace made in boot `recorded` (its boot_id) is read in boot
 * `current`, another. Every namespace died with that boot, and inode numbers and cookies restart
 * at boot, so a new namespace can have both: the record describes nothing live.
 *
 * A record without a boot (written before boots were recorded) counts as this boot's, which is
 * what the inode and cookie alone said before. Calling it an earlier boot's is not clearly safer:
 * such a file is read on the boot it was written in whenever bpfpilot is upgraded without a
 * reboot, and dropping the originals of namespaces that are alive would leave their tuned values
 * with nothing to undo them; the collision it would guard against needs a reboot while the old
 * file still names namespaces and a new namespace with the same inode and cookie, and such
 * records only get fewer (every new one carries its boot). Unknown now (no /proc): false too.
 */
export function recordIsFromEarlierBoot(
  recorded: string | undefined,
  current: string | null,
): boolean {
  return recorded !== undefined && current !== null && recorded !== current;
}

/** The info line for a dropped record (one per namespace and cookie). */
export function logReusedInode(log: LogLike, netns: string): void {
  log.info(
    `netns inode ${parseNetnsKey(netns)} was reused by a new namespace; dropped the record for ` +
      `the old one`,
    { netns },
  );
}

/**
 * Drops every record whose namespace inode now belongs to a new namespace (`liveCookie`: the
 * current cookie of a key, null without one, undefined when unknown now: kept). Returns how many
 * records went.
 */
export function pruneReusedNetns(
  journal: Journal,
  liveCookie: NetnsCookieOf,
  log: LogLike,
): number {
  return journal.pruneNetns((netns, cookie) => {
    if (cookie === undefined || !recordIsForReusedInode(cookie, liveCookie(netns))) return false;
    logReusedInode(log, netns);
    return true;
  });
}
