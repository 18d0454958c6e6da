import assert from "node:assert/strict";
import { INT_MAX } from "../../src/tuning/domain.ts";
import { changeOf, NAME } from "../support/tcp_buffer_names.ts";
import { type MemoryState, SYSCTL } from "../../src/tuners/tcp_buffer_rules.ts";
import {
  NO_SYN_COUNTERS,
  synBacklogCeiling,
  syncookiesIneffective,
  type SynCounters,
  synCounters,
  synCountersSince,
  synFloodDecision,
  type SynFloodInput,
  synQueueDrops,
} from "../../src/tuners/tcp_syn_backlog_rules.ts";
import { parseHeaderValuePairs } from "../../src/kernel/proc/snmp.ts";

function syn(overrides: Partial<SynFloodInput> = {}): SynFloodInput {
  return {
    maxSynBacklog: 2048,
    syncookies: 0,
    cookiesSinceOn: null,
    memory: "normal",
    acceptCorrelation: null,
    rate: 4,
    ...overrides,
  };
}

function cookies(failed: number | null, recv: number | null): SynCounters {
  return { ...NO_SYN_COUNTERS, syncookiesFailed: failed, syncookiesRecv: recv };
}

Deno.test("SYN flood: grows the backlog with syncookies off and memory normal", () => {
  assert.deepEqual(changeOf(synFloodDecision(syn())), {
    scenario: NAME.synIncrease,
    sysctl: "net.ipv4.tcp_max_syn_backlog",
    from: [2048],
    to: [2560],
    reason: "Due to SYN flood events on a system with TCP syncookies disabled and no low memory " +
      "issues, increase 'net.ipv4.tcp_max_syn_backlog'",
  });
  assert.equal(changeOf(synFloodDecision(syn({ rate: 0 }))).to[0], 2080);
  // no tcp_syncookies sysctl (no CONFIG_SYN_COOKIES): the backlog is the only defence
  assert.equal(changeOf(synFloodDecision(syn({ syncookies: null }))).to[0], 2560);
});

Deno.test("SYN flood: with syncookies on the backlog does nothing, so it is left alone", () => {
  for (const syncookies of [1, 2]) {
    assert.equal(synFloodDecision(syn({ syncookies })), null);
    assert.equal(synFloodDecision(syn({ syncookies, acceptCorrelation: 0 })), null);
  }
});

Deno.test("SYN flood: growth stops where 3/4 of the backlog covers the listen backlog", () => {
  assert.equal(synBacklogCeiling(1024), 1366);
  assert.equal(synBacklogCeiling(null), INT_MAX);
  assert.equal(synBacklogCeiling(0), INT_MAX);
  assert.equal(changeOf(synFloodDecision(syn({ listenBacklog: 1800 }))).to[0], 2400);
  assert.deepEqual(synFloodDecision(syn({ listenBacklog: 1024 })), {
    kind: "at-ceiling",
    sysctl: SYSCTL.maxSynBacklog,
    value: [2048],
    ceiling: 1366,
  });
  assert.equal(changeOf(synFloodDecision(syn({ maxSynBacklog: 2e9 }))).to[0], INT_MAX);
  assert.deepEqual(synFloodDecision(syn({ maxSynBacklog: INT_MAX })), {
    kind: "at-ceiling",
    sysctl: SYSCTL.maxSynBacklog,
    value: [INT_MAX],
    ceiling: INT_MAX,
  });
  for (const maxSynBacklog of [0, -1, NaN, 1.5]) {
    assert.equal(synFloodDecision(syn({ maxSynBacklog })), null, String(maxSynBacklog));
  }
});

Deno.test("ineffective syncookies: 1024 failed and none validated since we turned them on", () => {
  assert.equal(syncookiesIneffective(cookies(1024, 0)), true);
  assert.equal(syncookiesIneffective(cookies(5000, 0)), true);
  assert.equal(syncookiesIneffective(cookies(1023, 0)), false);
  assert.equal(syncookiesIneffective(cookies(5000, 1)), false);
  assert.equal(syncookiesIneffective(cookies(5000, null)), false);
  assert.equal(syncookiesIneffective(cookies(null, 0)), false);
});

Deno.test("SYN flood: disables only cookies we enabled, once they are ineffective", () => {
  const bad = cookies(1500, 0);
  assert.deepEqual(changeOf(synFloodDecision(syn({ cookiesSinceOn: bad, syncookies: 1 }))), {
    scenario: NAME.cookiesOff,
    sysctl: "net.ipv4.tcp_syncookies",
    from: [1],
    to: [0],
    reason: "Due to receiving 1500 invalid syncookies and no valid ones, disable " +
      "'net.ipv4.tcp_syncookies' as they are ineffective under current network conditions",
  });
  // even in low memory: cookies that validate nothing do not save memory for real peers
  assert.equal(
    changeOf(synFloodDecision(syn({ cookiesSinceOn: bad, syncookies: 1, memory: "near-pressure" })))
      .scenario,
    NAME.cookiesOff,
  );
  const notYet: Partial<SynFloodInput>[] = [
    { syncookies: 1, cookiesSinceOn: cookies(1023, 0) },
    { syncookies: 1, cookiesSinceOn: cookies(2000, 1) },
    { syncookies: 1, cookiesSinceOn: null }, // the kernel default's 1, or the admin's
  ];
  for (const o of notYet) assert.equal(synFloodDecision(syn(o)), null, JSON.stringify(o));
  // already off: growth as usual
  assert.equal(
    changeOf(synFloodDecision(syn({ syncookies: 0, cookiesSinceOn: bad }))).scenario,
    NAME.synIncrease,
  );
});

Deno.test("SYN flood: in low memory enables syncookies instead of growing the backlog", () => {
  for (const memory of ["near-pressure", "under-pressure", "near-exhaustion"] as MemoryState[]) {
    assert.deepEqual(changeOf(synFloodDecision(syn({ memory }))), {
      scenario: NAME.cookiesOn,
      sysctl: "net.ipv4.tcp_syncookies",
      from: [0],
      to: [1],
      reason: "Due to low memory conditions under SYN flood, enable 'net.ipv4.tcp_syncookies' " +
        "rather than increasing max SYN backlog",
    });
    assert.equal(synFloodDecision(syn({ memory, syncookies: 1 })), null, memory);
    assert.equal(synFloodDecision(syn({ memory, syncookies: null })), null, memory);
  }
});

Deno.test("SYN flood: floods uncorrelated with accepted connections shrink the backlog", () => {
  assert.deepEqual(changeOf(synFloodDecision(syn({ acceptCorrelation: 0.5 }))), {
    scenario: NAME.synDecrease,
    sysctl: "net.ipv4.tcp_max_syn_backlog",
    from: [2048],
    to: [1536],
    reason: "Due to SYN flood not correlated with TCP connection acceptance - suggesting an " +
      "attack - reduce 'net.ipv4.tcp_max_syn_backlog' from 2048 -> 1536",
  });
  assert.equal(changeOf(synFloodDecision(syn({ acceptCorrelation: 0.7499 }))).to[0], 1536);
  assert.equal(changeOf(synFloodDecision(syn({ acceptCorrelation: 0.75 }))).to[0], 2560);
  assert.equal(changeOf(synFloodDecision(syn({ acceptCorrelation: -0.2 }))).to[0], 1536);
  assert.equal(
    changeOf(synFloodDecision(syn({ acceptCorrelation: 0.8, threshold: 0.9 }))).to[0],
    1536,
  );
  // never under 128, never raised by a "decrease"
  assert.equal(
    changeOf(synFloodDecision(syn({ acceptCorrelation: 0, maxSynBacklog: 150 }))).to[0],
    128,
  );
  assert.equal(synFloodDecision(syn({ acceptCorrelation: 0, maxSynBacklog: 128 })), null);
  assert.equal(synFloodDecision(syn({ acceptCorrelation: 0, maxSynBacklog: 64 })), null);
});

Deno.test("SYN counters: from netstat and snmp, rises since a baseline, SYN-queue drops", () => {
  const netstat = parseHeaderValuePairs(
    "TcpExt: ListenOverflows ListenDrops TCPReqQFullDoCookies TCPReqQFullDrop SyncookiesRecv " +
      "SyncookiesFailed\nTcpExt: 3 10 4 2 1 7\n",
  );
  const snmp = parseHeaderValuePairs("Tcp: ActiveOpens PassiveOpens\nTcp: 5 9\n");
  const c = synCounters(netstat, snmp);
  assert.deepEqual(c, {
    listenDrops: 10,
    listenOverflows: 3,
    reqQFullDrop: 2,
    reqQFullDoCookies: 4,
    syncookiesRecv: 1,
    syncookiesFailed: 7,
    passiveOpens: 9,
  });
  assert.equal(synQueueDrops(c), 7);
  assert.equal(synQueueDrops(NO_SYN_COUNTERS), null);
  assert.deepEqual(synCounters(null, null), NO_SYN_COUNTERS);
  const later = { ...c, listenDrops: 15, passiveOpens: 8, syncookiesFailed: null };
  assert.deepEqual(synCountersSince(c, later), {
    listenDrops: 5,
    listenOverflows: 0,
    reqQFullDrop: 0,
    reqQFullDoCookies: 0,
    syncookiesRecv: 0,
    syncookiesFailed: null,
    passiveOpens: 0, // a counter never goes back; a smaller value is a reset, not a fall
  });
});
