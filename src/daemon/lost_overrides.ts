/**
 * The override detector's safety net: when its events were lost (ring buffer full), the values
 * bpfpilot last wrote are compared with the live ones. One that differs was written by someone
 * else since, and counts as the administrator's, as if its event had arrived.
 */
import { type JournalEntry, type SysctlValue, valueText } from "./journal.ts";

export interface LostOverride {
  netns: string;
  sysctl: string;
  live: SysctlValue;
}

export function findLostOverrides(
  entries: readonly JournalEntry[],
  isOverridden: (netns: string, sysctl: string) => boolean,
  readLive: (netns: string, sysctl: string) => SysctlValue | null,
): LostOverride[] {
  const lost: LostOverride[] = [];
  for (const e of entries) {
    // A write still pending is ours in flight; an override already recorded needs nothing.
    if (e.lastWritten === null || e.pending !== null || isOverridden(e.netns, e.sysctl)) continue;
    let live: SysctlValue | null;
    try {
      live = readLive(e.netns, e.sysctl);
    } catch {
      continue; // namespace gone: nothing left to protect there
    }
    if (live !== null && valueText(live) !== valueText(e.lastWritten)) {
      lost.push({ netns: e.netns, sysctl: e.sysctl, live });
    }
  }
  return lost;
}
