/**
 * The rollback's namespace identities and visits: each namespace's cookie asked once for the plan,
 * its skips and the prune; the daemon's exit rollback enters each namespace once, reading its
 * cookie and every value the journal has of it in that visit.
 */
import assert from "node:assert/strict";
import { Journal } from "../../src/daemon/journal.ts";
import { type NetnsVisit, rollbackFromJournal, visitEachOnce } from "../../src/daemon/rollback.ts";
import { recordingLog } from "../support/fake_context.ts";
import { ORIGINAL, override, RMEM, tune, TUNED } from "../support/journal_records.ts";
import { withTempDir } from "../support/temp_dir.ts";

const WMEM = "net.ipv4.tcp_wmem";

/** tcp_rmem and tcp_wmem tuned in each of `namespaces`, with cookie `cookie[netns]`. */
function journalOf(dir: string, cookie: Record<string, bigint>, namespaces: string[]): Journal {
  const j = Journal.open(dir, { netnsCookie: (ns) => cookie[ns] ?? null });
  for (const ns of namespaces) {
    tune(j, ns);
    j.recordOriginal(ns, WMEM, "tcp_buffer", ORIGINAL, TUNED);
    j.recordWritten(ns, WMEM, TUNED);
  }
  return j;
}

Deno.test("rollback: each namespace's identity is asked once (plan, skips and prune)", () => {
  withTempDir("bpfp-rbvisit-", (dir) => {
    const j = journalOf(dir, { "ns:5": 5n, "ns:6": 6n, "ns:7": 7n }, ["ns:5", "ns:6", "ns:7"]);
    j.markOverride(override("ns:5"));
    const values = new Map<string, number[]>();
    const io = {
      read: (s: string, ns: string) => values.get(`${ns} ${s}`) ?? TUNED,
      write: (s: string, ns: string, v: readonly number[]) => void values.set(`${ns} ${s}`, [...v]),
    };
    values.set(`ns:6 ${WMEM}`, [1, 2, 3]); // someone else's value: a skip
    const asked: string[] = [];
    // ns:7's inode belongs to a new namespace now: its records are dropped
    const live: Record<string, bigint> = { "ns:5": 5n, "ns:6": 6n, "ns:7": 70n };
    const r = rollbackFromJournal(j, io, recordingLog().log, () => null, (ns) => {
      asked.push(ns);
      return live[ns];
    });
    assert.deepEqual(asked.sort(), ["ns:5", "ns:6", "ns:7"], "once each");
    assert.deepEqual(r.restored.map((s) => `${s.netns} ${s.sysctl}`).sort(), [
      `ns:5 ${RMEM}`,
      `ns:5 ${WMEM}`,
      `ns:6 ${RMEM}`,
    ]);
    assert.deepEqual(r.skipped.map((s) => `${s.netns} ${s.code}`), ["ns:6 changed"]);
    assert.deepEqual(j.changedEntries(), []);
    j.close();
  });
});

Deno.test("exit rollback: one visit per namespace reads its cookie and its values; writes after", () => {
  withTempDir("bpfp-rbvisit-", (dir) => {
    const cookies = { "ns:5": 5n, "ns:6": 6n, "ns:7": 7n, "ns:8": 8n };
    const j = journalOf(dir, cookies, ["ns:5", "ns:6", "ns:7"]);
    tune(j, "global");
    j.markOverride(override("ns:8")); // an override only: the prune asks its cookie
    let inside: string | null = null;
    const visits: string[] = [];
    const live: Record<string, bigint> = { "ns:5": 5n, "ns:6": 6n, "ns:7": 70n, "ns:8": 8n };
    const visit: NetnsVisit = (netns, fn) => {
      visits.push(netns);
      const cookie = netns === "global" ? null : live[netns];
      // ns:7's inode is another namespace's now: its cookie read there, nothing run inside
      if (netns === "ns:7") return { cookie, ran: false };
      inside = netns;
      try {
        return { cookie, ran: true, result: fn() };
      } finally {
        inside = null;
      }
    };
    const reads: string[] = [], writes: string[] = [];
    const io = {
      read: (s: string, ns: string) => {
        assert.equal(inside, ns, `${s} of ${ns} read inside its visit`);
        reads.push(`${ns} ${s}`);
        return TUNED;
      },
      write: (s: string, ns: string) => void writes.push(`${ns} ${s}`),
    };
    const v = visitEachOnce(j, io, visit);
    const r = rollbackFromJournal(j, v.io, recordingLog().log, () => null, v.liveCookie);
    assert.deepEqual(visits.sort(), ["global", "ns:5", "ns:6", "ns:7", "ns:8"], "one each");
    assert.equal(reads.length, 5, "each value of a namespace entered read once");
    assert.deepEqual(writes.sort(), [
      `global ${RMEM}`,
      `ns:5 ${RMEM}`,
      `ns:5 ${WMEM}`,
      `ns:6 ${RMEM}`,
      `ns:6 ${WMEM}`,
    ]);
    assert.equal(r.restored.length, 5);
    assert.deepEqual(r.skipped, [], "ns:7's records dropped as a dead namespace's");
    assert.deepEqual(j.changedEntries(), []);
    j.close();
  });
});

Deno.test("exit rollback: a namespace not identified now is kept for a later rollback, not forgotten as gone", () => {
  withTempDir("bpfp-rbvisit-", (dir) => {
    const j = journalOf(dir, { "ns:5": 5n, "ns:6": 6n, "ns:7": 7n }, ["ns:5", "ns:6", "ns:7"]);
    // ns:5: no path leads there now (the registry's is stale); ns:6: the registry knows it no
    // more (a scan found it destroyed); ns:7: entered
    const visit: NetnsVisit = (netns, fn) =>
      netns === "ns:5"
        ? { cookie: undefined, ran: false }
        : netns === "ns:6"
        ? { cookie: null, ran: false }
        : { cookie: 7n, ran: true, result: fn() };
    const writes: string[] = [];
    const io = {
      read: () => TUNED,
      write: (s: string, ns: string) => void writes.push(`${ns} ${s}`),
    };
    const v = visitEachOnce(j, io, visit);
    const { log, lines } = recordingLog();
    const r = rollbackFromJournal(j, v.io, log, () => null, v.liveCookie);
    assert.deepEqual(writes.sort(), [`ns:7 ${RMEM}`, `ns:7 ${WMEM}`]);
    assert.deepEqual(r.skipped.map((s) => `${s.netns} ${s.code}`).sort(), [
      "ns:5 unidentified",
      "ns:5 unidentified",
      "ns:6 unreadable",
      "ns:6 unreadable",
    ]);
    assert.ok(
      lines.some((l) => /left .* in non-global ns \(inode 5\) for now/.test(l)),
      lines.join("\n"),
    );
    assert.deepEqual(
      j.changedEntries().map((e) => `${e.netns} ${e.sysctl}`).sort(),
      [`ns:5 ${RMEM}`, `ns:5 ${WMEM}`],
      "ns:5's kept for the next rollback, ns:6's forgotten",
    );
    j.close();
  });
});
