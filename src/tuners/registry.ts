/**
 * Every tuner bpfpilot ships, in load order. A new tuner is `src/tuners/<name>.ts` (its
 * definition, hooks and handlers, embedding `dist/bpf/<name>.bpf.o`), `bpf/<name>.bpf.c`, and one
 * line here (see docs/adding-a-tuner.md). The CLI and audit hand this list to the daemon.
 */
import type { TunerDefinition } from "../tuning/tuner.ts";
import { domainLookup } from "../tuning/domain.ts";
import { sysctlTuner } from "./sysctl.ts";
import { tcpBufferTuner } from "./tcp_buffer.ts";
import { neighTableTuner } from "./neigh_table.ts";
import { routeTableTuner } from "./route_table.ts";
import { udpBufferTuner } from "./udp_buffer.ts";
import { ipFragTuner } from "./ip_frag.ts";
import { tcpConnTuner } from "./tcp_conn.ts";
import { netBufferTuner } from "./net_buffer.ts";

export const TUNERS: readonly TunerDefinition[] = [
  sysctlTuner,
  tcpBufferTuner,
  neighTableTuner,
  routeTableTuner,
  ipFragTuner,
  udpBufferTuner,
  tcpConnTuner,
  netBufferTuner,
];

/** Each tuned sysctl's value domain, as its tuner declares it. */
export const tunableDomain = domainLookup(TUNERS);
