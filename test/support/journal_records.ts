/**
 * Journal records as the namespace-record unit tests write them: tcp_rmem tuned in a namespace,
 * and an administrator's override of it.
 */
import type { Journal } from "../../src/daemon/journal.ts";

export const RMEM = "net.ipv4.tcp_rmem";
export const ORIGINAL = [4096, 131072, 6291456];
export const TUNED = [4096, 131072, 7000000];

/** tcp_rmem's original recorded in `netns`, then TUNED written there. */
export function tune(j: Journal, netns: string): void {
  j.recordOriginal(netns, RMEM, "tcp_buffer", ORIGINAL, TUNED);
  j.recordWritten(netns, RMEM, TUNED);
}

/** An override of tcp_rmem in `netns` (its writer: pid 1, "x"). */
export const override = (netns: string) => ({
  netns,
  sysctl: RMEM,
  tuner: "tcp_buffer",
  pid: 1,
  comm: "x",
});
