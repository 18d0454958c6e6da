/** Every static check, in report order. IDs are stable: add new ones, never rename or reuse. */
import type { CheckDefinition } from "./input.ts";
import { ip6fragReasmFails, ipfragReasmFails } from "./ipfrag.ts";
import { neigh6TableOverflow, neighTableOverflow } from "./neigh.ts";
import { netdevBacklogDrops, netdevBudgetSqueeze, netHighOrderAlloc } from "./netdev.ts";
import {
  tcpListenOverflow,
  tcpMaxSynBacklog,
  tcpMemPressure,
  tcpModerateRcvbuf,
  tcpRmemMax,
  tcpSyncookies,
  tcpWmemMax,
} from "./tcp.ts";
import { udpMemPressure, udpRcvbufErrors } from "./udp.ts";

export const STATIC_CHECKS: readonly CheckDefinition[] = [
  tcpRmemMax,
  tcpWmemMax,
  tcpMemPressure,
  tcpModerateRcvbuf,
  tcpSyncookies,
  tcpMaxSynBacklog,
  tcpListenOverflow,
  netdevBacklogDrops,
  netdevBudgetSqueeze,
  netHighOrderAlloc,
  udpRcvbufErrors,
  udpMemPressure,
  ipfragReasmFails,
  ip6fragReasmFails,
  neighTableOverflow,
  neigh6TableOverflow,
];
