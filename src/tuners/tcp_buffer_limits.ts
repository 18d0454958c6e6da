/**
 * tcp_buffer's memory-derived bounds: the ceilings bpftune uses for tcp_mem (fractions of the
 * free-buffer pages), the kernel's own boot-time defaults (the floor for any shrinking), and the
 * per-socket buffer ceiling.
 */

import { INT_MAX } from "../tuning/domain.ts";
import { kernelVersion } from "../kernel/memory.ts";

/** Bounds for growing tcp_mem, in pages (bpftune: min < 1/16, pressure < 1/8, max <= 1/4). */
export interface TcpMemCeilings {
  min: number;
  pressure: number;
  max: number;
}

export function tcpMemCeilings(freeBufferPages: number): TcpMemCeilings {
  return {
    min: Math.floor(freeBufferPages / 16),
    pressure: Math.floor(freeBufferPages / 8),
    max: Math.floor(freeBufferPages / 4),
  };
}

/** tcp_mem as the kernel sets it at boot (tcp_init_mem): ~4.69 %, 6.25 %, 9.38 % of nfbp. */
export function kernelDefaultTcpMem(freeBufferPages: number): [number, number, number] {
  const limit = Math.max(Math.floor(freeBufferPages / 16), 128);
  const min = Math.floor(limit / 4) * 3;
  return [min, limit, min * 2];
}

export interface KernelVersion {
  major: number;
  minor: number;
}

/**
 * tcp_wmem[2] / tcp_rmem[2] as the kernel sets them at boot (tcp_init): at most 1/128 of the
 * free-buffer pages in bytes, capped at 4 MiB (wmem) and 6 MiB (rmem; 32 MiB since Linux 6.16).
 * Without a version the newer, higher rmem default is assumed so shrinking stays conservative.
 */
export function kernelDefaultTcpBufferMax(
  freeBufferPages: number,
  pageSize: number,
  kernel?: KernelVersion,
): { wmem: number; rmem: number } {
  const limit = Math.floor((freeBufferPages * pageSize) / 128);
  const newRmem = !kernel || kernel.major > 6 || (kernel.major === 6 && kernel.minor >= 16);
  const rmemCap = (newRmem ? 32 : 6) * 1024 * 1024;
  return {
    wmem: Math.max(64 * 1024, Math.min(4 * 1024 * 1024, limit)),
    rmem: Math.max(131072, Math.min(rmemCap, limit)),
  };
}

/**
 * A per-socket ceiling for tcp_rmem[2]/tcp_wmem[2]: one socket may use at most an eighth of
 * TCP's hard memory limit (tcp_mem[2], pages), and never more than INT_MAX. bpftune had only
 * INT_MAX, so a busy link drove the max to 2 GiB (issue #93).
 */
export function socketBufferCeiling(tcpMemMaxPages: number, pageSize: number): number {
  return Math.min(INT_MAX, Math.floor((tcpMemMaxPages * pageSize) / 8));
}

/**
 * The kernel's stock tcp_wmem/tcp_rmem max where memory does not cap them (tcp_init's caps), for
 * a `uname -r` release; an unknown release gets the newer, higher rmem cap. The audit's
 * "below the kernel default" comes from here, so audit and tuner agree.
 */
export function stockTcpBufferMax(release: string | null): { wmem: number; rmem: number } {
  return kernelDefaultTcpBufferMax(2 ** 40, 4096, release ? kernelVersion(release) : undefined);
}
