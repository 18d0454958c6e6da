/** The congestion control algorithms this kernel offers (built in or loaded modules). */
import { readSysctlText } from "./sysctl.ts";

export function parseCongestionList(text: string): string[] {
  return text.trim().split(/\s+/).filter((a) => /^[a-z0-9_]{1,15}$/.test(a));
}

/** `net.ipv4.tcp_available_congestion_control`; throws SysctlError when unreadable. */
export function availableCongestionControl(): string[] {
  return parseCongestionList(readSysctlText("net.ipv4.tcp_available_congestion_control"));
}
