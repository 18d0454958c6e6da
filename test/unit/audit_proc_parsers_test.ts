import assert from "node:assert/strict";
import { readCounters } from "../../src/audit/counters.ts";
import { counter, parseHeaderValuePairs, parseSnmp6 } from "../../src/kernel/proc/snmp.ts";
import { parseSockstat } from "../../src/kernel/proc/sockstat.ts";
import { parseSoftnetStat, softnetTotal } from "../../src/kernel/proc/softnet.ts";
import { parseStatTable, statGauge, statTotal } from "../../src/kernel/proc/stat_table.ts";

/**
 * Samples captured from this project's test machine (Linux 6.18, 2 CPUs) with `cat`, kept
 * verbatim so the parsers are tested against real kernel output.
 */

const SNMP_6_18 =
  "Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits\nIp: 2 64 336674 0 0 0 0 0 336674 274376 0 0 0 0 0 0 0 0 0 274376\nIcmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos InEchoReps InTimestamps InTimestampReps InAddrMasks InAddrMaskReps OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs OutTimeExcds OutParmProbs OutSrcQuenchs OutRedirects OutEchos OutEchoReps OutTimestamps OutTimestampReps OutAddrMasks OutAddrMaskReps\nIcmp: 1 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\nIcmpMsg: InType3\nIcmpMsg: 1\nTcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\nTcp: 1 200 120000 -1 53 15 0 0 0 336597 329085 52 0 36 0\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdp: 76 0 0 77 0 0 0 0 0\nUdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\nUdpLite: 0 0 0 0 0 0 0 0 0\n";

const NETSTAT_6_18 =
  "TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled RcvPruned OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled TWKilled PAWSActive PAWSEstab BeyondWindow TSEcrRejected PAWSOldAck PAWSTimewait DelayedACKs DelayedACKLocked DelayedACKLost ListenOverflows ListenDrops TCPHPHits TCPPureAcks TCPHPAcks TCPRenoRecovery TCPSackRecovery TCPSACKReneging TCPSACKReorder TCPRenoReorder TCPTSReorder TCPFullUndo TCPPartialUndo TCPDSACKUndo TCPLossUndo TCPLostRetransmit TCPRenoFailures TCPSackFailures TCPLossFailures TCPFastRetrans TCPSlowStartRetrans TCPTimeouts TCPLossProbes TCPLossProbeRecovery TCPRenoRecoveryFail TCPSackRecoveryFail TCPRcvCollapsed TCPBacklogCoalesce TCPDSACKOldSent TCPDSACKOfoSent TCPDSACKRecv TCPDSACKOfoRecv TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger TCPAbortFailed TCPMemoryPressures TCPMemoryPressuresChrono TCPSACKDiscard TCPDSACKIgnoredOld TCPDSACKIgnoredNoUndo TCPSpuriousRTOs TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPSackShifted TCPSackMerged TCPSackShiftFallback TCPBacklogDrop PFMemallocDrop TCPMinTTLDrop TCPDeferAcceptDrop IPReversePathFilter TCPTimeWaitOverflow TCPReqQFullDoCookies TCPReqQFullDrop TCPRetransFail TCPRcvCoalesce TCPOFOQueue TCPOFODrop TCPOFOMerge TCPChallengeACK TCPSYNChallenge TCPFastOpenActive TCPFastOpenActiveFail TCPFastOpenPassive TCPFastOpenPassiveFail TCPFastOpenListenOverflow TCPFastOpenCookieReqd TCPFastOpenBlackhole TCPSpuriousRtxHostQueues BusyPollRxPackets TCPAutoCorking TCPFromZeroWindowAdv TCPToZeroWindowAdv TCPWantZeroWindowAdv TCPSynRetrans TCPOrigDataSent TCPHystartTrainDetect TCPHystartTrainCwnd TCPHystartDelayDetect TCPHystartDelayCwnd TCPACKSkippedSynRecv TCPACKSkippedPAWS TCPACKSkippedSeq TCPACKSkippedFinWait2 TCPACKSkippedTimeWait TCPACKSkippedChallenge TCPWinProbe TCPKeepAlive TCPMTUPFail TCPMTUPSuccess TCPDelivered TCPDeliveredCE TCPAckCompressed TCPZeroWindowDrop TCPRcvQDrop TCPWqueueTooBig TCPFastOpenPassiveAltKey TcpTimeoutRehash TcpDuplicateDataRehash TCPDSACKRecvSegs TCPDSACKIgnoredDubious TCPMigrateReqSuccess TCPMigrateReqFailure TCPPLBRehash TCPAORequired TCPAOBad TCPAOKeyNotFound TCPAOGood TCPAODroppedIcmps\nTcpExt: 0 0 0 0 0 0 0 0 0 0 34 0 0 0 0 0 0 0 0 6 0 44 0 0 18047 27577 15084 0 49 0 41 0 12 18 12 18 0 0 0 0 0 51 0 2 13 0 0 0 0 53528 44 0 44 0 18 0 0 0 0 0 0 0 0 2 1 0 0 0 0 0 15 63 0 0 0 0 0 0 0 0 0 60985 72 0 0 0 0 0 0 0 0 0 0 0 2 0 0 1985 1985 2398 0 276768 0 0 0 0 0 0 0 0 0 0 0 13 0 0 276871 0 0 0 0 0 0 2 0 52 0 0 0 0 0 0 0 0 0\nIpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets InCsumErrors InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts ReasmOverlaps\nIpExt: 0 0 0 0 0 0 17376123916 16582232111 0 0 0 0 0 336678 0 0 0 0\nMPTcpExt: MPCapableSYNRX MPCapableSYNTX MPCapableSYNACKRX MPCapableACKRX MPCapableFallbackACK MPCapableFallbackSYNACK MPCapableSYNTXDrop MPCapableSYNTXDisabled MPCapableEndpAttempt MPFallbackTokenInit MPTCPRetrans MPJoinNoTokenFound MPJoinSynRx MPJoinSynBackupRx MPJoinSynAckRx MPJoinSynAckBackupRx MPJoinSynAckHMacFailure MPJoinAckRx MPJoinAckHMacFailure MPJoinRejected MPJoinSynTx MPJoinSynTxCreatSkErr MPJoinSynTxBindErr MPJoinSynTxConnectErr DSSNotMatching DSSCorruptionFallback DSSCorruptionReset InfiniteMapTx InfiniteMapRx DSSNoMatchTCP DataCsumErr OFOQueueTail OFOQueue OFOMerge NoDSSInWindow DuplicateData AddAddr AddAddrTx AddAddrTxDrop EchoAdd EchoAddTx EchoAddTxDrop PortAdd AddAddrDrop MPJoinPortSynRx MPJoinPortSynAckRx MPJoinPortAckRx MismatchPortSynRx MismatchPortAckRx RmAddr RmAddrDrop RmAddrTx RmAddrTxDrop RmSubflow MPPrioTx MPPrioRx MPFailTx MPFailRx MPFastcloseTx MPFastcloseRx MPRstTx MPRstRx SubflowStale SubflowRecover SndWndShared RcvWndShared RcvWndConflictUpdate RcvWndConflict MPCurrEstab Blackhole MPCapableDataFallback MD5SigFallback DssFallback SimultConnectFallback FallbackFailed WinProbe\nMPTcpExt: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

const SOFTNET_6_18 =
  "0003275f 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n0001fbc8 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000000\n";

const ARP_CACHE_6_18 =
  "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n00000002 00000001 00000000 00000000   00000000 00000000 00000000   00000000         00000000         00000031         00000000       00000000            00000000\n00000002 00000001 00000000 00000000   00000008 00000004 00000000   00000000         00000000         00000000         00000000       00000000            00000000\n";

const SOCKSTAT_6_18 =
  "sockets: used 14\nTCP: inuse 1 orphan 0 tw 12 alloc 1 mem 116\nUDP: inuse 0 mem 0\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n";

/** The first 20 lines of /proc/net/snmp6. */
const SNMP6_6_18_HEAD =
  "Ip6InReceives                   \t1\nIp6InHdrErrors                  \t0\nIp6InTooBigErrors               \t0\nIp6InNoRoutes                   \t0\nIp6InAddrErrors                 \t0\nIp6InUnknownProtos              \t0\nIp6InTruncatedPkts              \t0\nIp6InDiscards                   \t0\nIp6InDelivers                   \t1\nIp6OutForwDatagrams             \t0\nIp6OutRequests                  \t10\nIp6OutDiscards                  \t0\nIp6OutNoRoutes                  \t0\nIp6ReasmTimeout                 \t0\nIp6ReasmReqds                   \t0\nIp6ReasmOKs                     \t0\nIp6ReasmFails                   \t0\nIp6FragOKs                      \t0\nIp6FragFails                    \t0\nIp6FragCreates                  \t0\n";

Deno.test("snmp: real 6.18 sample parses every protocol and field", () => {
  const t = parseHeaderValuePairs(SNMP_6_18);
  assert.deepEqual([...t.keys()], ["Ip", "Icmp", "IcmpMsg", "Tcp", "Udp", "UdpLite"]);
  assert.equal(counter(t, "Tcp", "MaxConn"), -1);
  assert.equal(counter(t, "Tcp", "RtoMin"), 200);
  assert.equal(counter(t, "Ip", "DefaultTTL"), 64);
  assert.equal(typeof counter(t, "Udp", "RcvbufErrors"), "number");
  assert.equal(typeof counter(t, "Ip", "ReasmFails"), "number");
  assert.equal(t.get("Udp")!.size, 9);
  assert.equal(counter(t, "Udp", "NoSuchField"), undefined);
  assert.equal(counter(null, "Udp", "RcvbufErrors"), undefined);
});

Deno.test("netstat: real 6.18 sample has the TcpExt fields the checks read", () => {
  const t = parseHeaderValuePairs(NETSTAT_6_18);
  assert.deepEqual([...t.keys()], ["TcpExt", "IpExt", "MPTcpExt"]);
  for (
    const f of [
      "RcvPruned",
      "OfoPruned",
      "TCPRcvQDrop",
      "TCPMemoryPressures",
      "TCPAbortOnMemory",
      "TCPReqQFullDrop",
      "ListenOverflows",
    ]
  ) {
    assert.equal(typeof counter(t, "TcpExt", f), "number", f);
  }
  // Header and value lines of the real sample have the same length: nothing was dropped.
  const header = NETSTAT_6_18.split("\n")[0].split(/\s+/).length - 1;
  assert.equal(t.get("TcpExt")!.size, header);
});

Deno.test("snmp: a value line shorter or longer than its header keeps the common columns", () => {
  const t = parseHeaderValuePairs("Udp: A B C\nUdp: 1 2\nTcp: X\nTcp: 7 8 9\n");
  assert.deepEqual([...t.get("Udp")!], [["A", 1], ["B", 2]]);
  assert.deepEqual([...t.get("Tcp")!], [["X", 7]]);
});

Deno.test("snmp: malformed lines are skipped without losing the good pairs", () => {
  const text = [
    "garbage without colon",
    "Ip: Forwarding DefaultTTL", // header whose value line is missing
    "Tcp: RtoAlgorithm RtoMin",
    "Tcp: 1 200",
    "Udp: InDatagrams NoPorts",
    "Udp: 12 abc", // non-numeric value: the pair is refused
    "Icmp: 1 2", // a value line without header
    "Icmp: 3 4",
    "UdpLite: InDatagrams",
    "Other: 5", // mismatched protocol
    "",
    "TcpExt: SyncookiesSent",
    "TcpExt: 99999999999999999999", // beyond 2^53: not a safe integer, refused
  ].join("\n");
  const t = parseHeaderValuePairs(text);
  assert.deepEqual([...t.keys()], ["Tcp"]);
  assert.equal(counter(t, "Tcp", "RtoMin"), 200);
  assert.equal(parseHeaderValuePairs("").size, 0);
  assert.equal(parseHeaderValuePairs("\u0000\u0001binary").size, 0);
});

Deno.test("snmp6: name/value lines, tabs and junk", () => {
  const t = parseSnmp6(SNMP6_6_18_HEAD);
  assert.equal(t.size, 20);
  assert.equal(typeof t.get("Ip6ReasmFails"), "number");
  const junk = parseSnmp6("Ip6ReasmFails \t 12\nbroken\nIp6X 1 2\nUdp6RcvbufErrors -\n");
  assert.deepEqual([...junk], [["Ip6ReasmFails", 12]]);
});

Deno.test("softnet_stat: real sample, one row per CPU with the cpu index column", () => {
  const rows = parseSoftnetStat(SOFTNET_6_18);
  assert.equal(rows.length, 2);
  assert.deepEqual(rows.map((r) => r.cpu), [0, 1]);
  for (const r of rows) {
    assert.equal(typeof r.processed, "number");
    assert.equal(typeof r.dropped, "number");
    assert.equal(typeof r.timeSqueeze, "number");
    assert.equal(typeof r.flowLimitCount, "number");
  }
});

Deno.test("softnet_stat: hex columns, old short rows, extra columns and corrupt rows", () => {
  const text = [
    "0000000a 00000002 000000ff 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000003 00000000 00000005 00000000 00000000 deadbeef",
    "00000010 00000001", // a short row: no time_squeeze column
    "zzzz 0001 0002", // corrupt: skipped
    "   ",
    "00000001 00000000 00000001", // no cpu index column: position is used
  ].join("\n");
  const rows = parseSoftnetStat(text);
  assert.deepEqual(rows, [
    { cpu: 5, processed: 10, dropped: 2, timeSqueeze: 255, flowLimitCount: 3 },
    { cpu: 1, processed: 16, dropped: 1, timeSqueeze: undefined, flowLimitCount: undefined },
    { cpu: 2, processed: 1, dropped: 0, timeSqueeze: 1, flowLimitCount: undefined },
  ]);
  assert.equal(softnetTotal(rows, "processed"), 27);
  assert.equal(softnetTotal(rows, "timeSqueeze"), 256);
  assert.equal(softnetTotal(rows, "flowLimitCount"), 3);
  assert.equal(softnetTotal([], "dropped"), undefined);
});

Deno.test("arp_cache stat table: real sample, per-CPU sums and the entries gauge", () => {
  const t = parseStatTable(ARP_CACHE_6_18)!;
  assert.ok(t.columns.includes("table_fulls"));
  assert.equal(t.rows.length, 2);
  assert.equal(typeof statTotal(t, "table_fulls"), "number");
  assert.equal(statTotal(t, "no_such_column"), undefined);
  const synthetic = parseStatTable(
    "entries table_fulls\n00000010 00000001\n00000010 0000000a\nnot hex\n00000010\n",
  )!;
  assert.equal(statTotal(synthetic, "table_fulls"), 11);
  assert.equal(statGauge(synthetic, "entries"), 16);
  assert.equal(parseStatTable(""), null);
  assert.equal(parseStatTable("1234 5678\n"), null);
});

Deno.test("sockstat: real sample gives TCP and UDP memory in pages", () => {
  const t = parseSockstat(SOCKSTAT_6_18);
  assert.equal(typeof counter(t, "TCP", "mem"), "number");
  assert.equal(typeof counter(t, "UDP", "mem"), "number");
  assert.equal(typeof counter(t, "sockets", "used"), "number");
  const odd = parseSockstat("TCP: inuse 1 mem\nFRAG: inuse x memory 4\njunk\n");
  assert.equal(counter(odd, "TCP", "inuse"), 1);
  assert.equal(counter(odd, "TCP", "mem"), undefined);
  assert.equal(counter(odd, "FRAG", "memory"), 4);
});

Deno.test("readCounters: a missing /proc/net file is recorded, not fatal", () => {
  const root = Deno.makeTempDirSync({ prefix: "bpfpilot-audit-proc-" });
  try {
    Deno.mkdirSync(`${root}/net`);
    Deno.writeTextFileSync(`${root}/net/snmp`, SNMP_6_18);
    Deno.writeTextFileSync(`${root}/meminfo`, "MemTotal:       2048 kB\n");
    const c = readCounters(root);
    assert.equal(counter(c.snmp, "Tcp", "RtoMin"), 200);
    assert.equal(c.netstat, null);
    assert.equal(c.softnet, null);
    assert.equal(c.memTotalBytes, 2048 * 1024);
    assert.equal(c.pageSize, 4096);
    assert.equal(c.missing.get(`${root}/net/netstat`), "not present on this kernel");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("a protocol or prefix filter parses only those counters, the same values", () => {
  const all = parseHeaderValuePairs(SNMP_6_18);
  const ip = parseHeaderValuePairs(SNMP_6_18, new Set(["Ip"]));
  assert.deepEqual([...ip.keys()], ["Ip"]);
  assert.deepEqual(ip.get("Ip"), all.get("Ip"));
  const text = "Ip6InReceives 5\nIp6ReasmReqds 3\nIp6ReasmFails 1\nUdp6InDatagrams 9\n";
  assert.deepEqual(
    [...parseSnmp6(text, "Ip6Reasm")],
    [["Ip6ReasmReqds", 3], ["Ip6ReasmFails", 1]],
  );
  assert.equal(parseSnmp6(text).size, 4);
});
