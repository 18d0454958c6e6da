import assert from "node:assert/strict";
import { Journal, JournalError } from "../../src/daemon/journal.ts";
import { pruneReusedNetns, recordIsForReusedInode } from "../../src/daemon/netns_reuse.ts";
import { rollbackFromJournal, vettedRollbackPlan } from "../../src/daemon/rollback.ts";
import { recordingLog } from "../support/fake_context.ts";
import { override, RMEM, tune, TUNED } from "../support/journal_records.ts";
import { withTempDir } from "../support/temp_dir.ts";
import { NetnsGoneError } from "../../src/kernel/netns.ts";

/** Cookies by key as a kernel with SO_NETNS_COOKIE would give them; absent keys have none. */
const cookies = (m: Record<string, bigint>) => (netns: string) => m[netns] ?? null;

Deno.test("journal: the netns cookie is stored with non-global records and read back", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    const j = Journal.open(dir, { netnsCookie: cookies({ "ns:5": 123n, "global": 9n }) });
    for (const ns of ["ns:5", "ns:6", "global"]) tune(j, ns);
    j.markOverride(override("ns:5"));
    j.markOverride(override("ns:6"));
    j.close();
    const state = JSON.parse(Deno.readTextFileSync(`${dir}/state.json`));
    assert.equal(state.version, 2, "an optional field: the format version stays 2");
    const again = Journal.open(dir);
    const byNs = Object.fromEntries(again.changedEntries().map((e) => [e.netns, e.netnsCookie]));
    assert.deepEqual(byNs, { "ns:5": "123", "ns:6": undefined, "global": undefined });
    const ov = Object.fromEntries(again.overrides().map((o) => [o.netns, o.netnsCookie]));
    assert.deepEqual(ov, { "ns:5": "123", "ns:6": undefined });
    again.close();
  });
});

Deno.test("journal: a new entry takes entryNetnsCookie (the learnt one); an override the verified one", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    const asked: string[] = [];
    const j = Journal.open(dir, {
      netnsCookie: (ns) => (asked.push(`verified ${ns}`), 123n),
      entryNetnsCookie: (ns) => (asked.push(`learnt ${ns}`), 456n),
    });
    tune(j, "ns:5");
    tune(j, "ns:5"); // the entry exists: no cookie asked again
    j.markOverride(override("ns:5"));
    assert.deepEqual(asked, ["learnt ns:5", "verified ns:5"]);
    assert.equal(j.entry("ns:5", RMEM)?.netnsCookie, "456");
    assert.equal(j.overrides()[0].netnsCookie, "123");
    j.close();
  });
});

Deno.test("journal: records without a cookie (before this change) read as before", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    const j = Journal.open(dir);
    tune(j, "ns:5");
    j.markOverride(override("ns:5"));
    j.close();
    const text = Deno.readTextFileSync(`${dir}/state.json`);
    assert.doesNotMatch(text, /netnsCookie/);
    const again = Journal.open(dir);
    assert.equal(again.entry("ns:5", RMEM)?.netnsCookie, undefined);
    assert.deepEqual(again.entry("ns:5", RMEM)?.lastWritten, TUNED);
    assert.equal(again.overrides()[0].netnsCookie, undefined);
    again.close();
  });
});

Deno.test("journal: a malformed cookie is a corrupt journal, named by field", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    const j = Journal.open(dir, { netnsCookie: () => 77n });
    tune(j, "ns:5");
    j.close();
    const file = `${dir}/state.json`;
    for (const bad of ['"-1"', '"12x"', "12", '"18446744073709551616"']) {
      Deno.writeTextFileSync(
        file,
        Deno.readTextFileSync(file).replace(
          /"netnsCookie": ?("[^"]*"|\d+)/,
          `"netnsCookie": ${bad}`,
        ),
      );
      assert.throws(() => Journal.open(dir), (e: unknown) => {
        assert.ok(e instanceof JournalError);
        assert.match(e.message, /netnsCookie/);
        return true;
      }, bad);
    }
  });
});

Deno.test("decision: same inode and another cookie is gone; same cookie or no cookie is kept", () => {
  assert.equal(recordIsForReusedInode("123", 456n), true, "inode reused by a new namespace");
  assert.equal(recordIsForReusedInode("123", 123n), false, "the same namespace");
  assert.equal(recordIsForReusedInode(undefined, 456n), false, "an old record: inode only");
  assert.equal(recordIsForReusedInode("123", null), false, "no cookies (5.10) or unknown now");
});

Deno.test("pruneReusedNetns drops records of reused inodes only, logging each once", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    const j = Journal.open(dir, {
      netnsCookie: cookies({ "ns:5": 123n, "ns:6": 7n, "ns:8": 9n }),
    });
    for (const ns of ["ns:5", "ns:6", "ns:7", "ns:8", "global"]) tune(j, ns);
    for (const ns of ["ns:5", "ns:6", "ns:7"]) j.markOverride(override(ns));
    const { log, lines } = recordingLog();
    const live = cookies({ "ns:5": 999n, "ns:6": 7n, "ns:7": 50n });
    assert.equal(pruneReusedNetns(j, live, log), 2, "ns:5's entry and override");
    assert.deepEqual(lines, [
      "I netns inode 5 was reused by a new namespace; dropped the record for the old one",
    ]);
    assert.deepEqual(j.changedEntries().map((e) => e.netns).sort(), [
      "global",
      "ns:6",
      "ns:7",
      "ns:8",
    ]);
    assert.deepEqual(j.overrides().map((o) => o.netns).sort(), ["ns:6", "ns:7"]);
    j.close();
  });
});

Deno.test("rollback never writes into a namespace that took a dead one's inode", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    const j = Journal.open(dir, { netnsCookie: cookies({ "ns:5": 123n, "ns:6": 7n }) });
    for (const ns of ["ns:5", "ns:6"]) tune(j, ns);
    const written: string[] = [];
    const io = { read: () => TUNED, write: (_s: string, ns: string) => void written.push(ns) };
    const live = cookies({ "ns:5": 999n, "ns:6": 7n });
    const dry = vettedRollbackPlan(j, io, () => null, live);
    assert.deepEqual(dry.restore.map((s) => s.netns), ["ns:6"]);
    assert.match(dry.skipped.find((s) => s.netns === "ns:5")?.reason ?? "", /new namespace/);
    const { log, lines } = recordingLog();
    const r = rollbackFromJournal(j, io, log, () => null, live);
    assert.deepEqual(written, ["ns:6"]);
    assert.deepEqual(r.restored.map((s) => s.netns), ["ns:6"]);
    assert.ok(lines.some((l) => /^I netns inode 5 was reused/.test(l)), lines.join("\n"));
    assert.deepEqual(j.changedEntries(), [], "both records gone");
    j.close();
  });
});

Deno.test("an override of a dead namespace does not silence the new one at its inode", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    const before = Journal.open(dir, { netnsCookie: cookies({ "ns:5": 111n, "ns:6": 222n }) });
    before.markOverride(override("ns:5"));
    before.markOverride(override("ns:6"));
    before.close();
    // ns:5 died and a new namespace (cookie 333) took its inode; ns:6 lives on; no prune yet.
    const j = Journal.open(dir, { netnsCookie: cookies({ "ns:5": 333n, "ns:6": 222n }) });
    assert.equal(j.isOverridden("ns:5", RMEM), false, "the new namespace is tuned");
    assert.equal(j.isTunerOverridden("ns:5", "tcp_buffer"), false);
    assert.equal(j.isOverridden("ns:6", RMEM), true, "the live namespace's override holds");
    assert.equal(j.isTunerOverridden("ns:6", "tcp_buffer"), true);
    j.close();
    // Without a live cookie (5.10, or not known now) the inode decides, as before cookies.
    const blind = Journal.open(dir, { netnsCookie: () => null });
    assert.equal(blind.isOverridden("ns:5", RMEM), true);
    blind.close();
    const failing = Journal.open(dir, {
      netnsCookie: () => {
        throw new Error("setns: Operation not permitted");
      },
    });
    assert.equal(failing.isOverridden("ns:5", RMEM), true);
    failing.close();
  });
});

// --- a namespace that cannot be identified now (its live cookie unknown) ---------------------

/** Cookies that can change: a key set to undefined cannot be identified now. */
function liveCookies(m: Record<string, bigint | undefined>) {
  return { m, of: (netns: string) => (netns in m ? m[netns] : null) };
}

Deno.test("unknown cookie: an override there holds (nothing written) until the namespace is told", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    const before = Journal.open(dir, { netnsCookie: cookies({ "ns:5": 111n }) });
    before.markOverride(override("ns:5"));
    before.close();
    const live = liveCookies({ "ns:5": undefined });
    const j = Journal.open(dir, { netnsCookie: live.of });
    assert.equal(j.isOverridden("ns:5", RMEM), true, "not known to be another namespace");
    assert.equal(j.isTunerOverridden("ns:5", "tcp_buffer"), true);
    live.m["ns:5"] = 333n; // told now: a new namespace took the inode
    assert.equal(j.isOverridden("ns:5", RMEM), false, "the new namespace is tuned");
    live.m["ns:5"] = 111n;
    assert.equal(j.isOverridden("ns:5", RMEM), true, "its own namespace: the override holds");
    j.close();
  });
});

Deno.test("unknown cookie: an override waits in memory, holds, and is recorded once the namespace is told", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    let now = Date.parse("2026-12-02T12:00:00Z");
    const warned: string[] = [];
    const live = liveCookies({ "ns:5": undefined, "ns:6": undefined });
    const j = Journal.open(dir, {
      netnsCookie: live.of,
      now: () => new Date(now),
      warn: (m) => warned.push(m),
    });
    j.markOverride(override("ns:5"));
    j.markOverride(override("ns:6"));
    assert.deepEqual(j.overrides(), [], "no record that may carry a dead namespace's cookie");
    assert.equal(j.isOverridden("ns:5", RMEM), true, "it holds while it waits");
    assert.equal(j.isTunerOverridden("ns:6", "tcp_buffer"), true);
    assert.equal(j.isOverridden("ns:7", RMEM), false, "only there");
    assert.equal(j.placePendingOverrides(), 0, "still unknown: it waits");
    live.m["ns:5"] = 555n;
    now += 10_000;
    assert.equal(j.placePendingOverrides(), 1);
    assert.deepEqual(j.overrides().map((o) => [o.netns, o.netnsCookie, o.comm]), [
      ["ns:5", "555", "x"],
    ]);
    const again = Journal.open(dir, { netnsCookie: live.of });
    assert.equal(again.isOverridden("ns:5", RMEM), true, "durable: another reader sees it");
    again.close();
    // ns:6 is never told: dropped after 30 s, with a warning, and no longer holds.
    now += 20_000;
    assert.equal(j.placePendingOverrides(), 0);
    assert.equal(j.isOverridden("ns:6", RMEM), false);
    assert.equal(warned.length, 1);
    assert.match(warned[0], /net\.ipv4\.tcp_rmem in network namespace ns:6 .* not recorded/);
    j.close();
  });
});

Deno.test("unknown cookie: no entry is recorded (NetnsGoneError), so nothing is written", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    const live = liveCookies({ "ns:5": undefined });
    const j = Journal.open(dir, { netnsCookie: live.of });
    assert.throws(() => tune(j, "ns:5"), (e: unknown) => e instanceof NetnsGoneError);
    assert.deepEqual(j.changedEntries(), []);
    const throwing = Journal.open(dir, {
      netnsCookie: () => {
        throw new Error("setns: Operation not permitted");
      },
    });
    assert.throws(() => tune(throwing, "ns:5"), (e: unknown) => e instanceof NetnsGoneError);
    throwing.close();
    live.m["ns:5"] = 55n;
    tune(j, "ns:5");
    assert.equal(j.entry("ns:5", RMEM)?.netnsCookie, "55");
    j.close();
  });
});

Deno.test("unknown cookie: rollback neither restores nor forgets the record; prune keeps it", () => {
  withTempDir("bpfp-nsreuse-", (dir) => {
    const j = Journal.open(dir, { netnsCookie: cookies({ "ns:5": 123n, "ns:6": 7n }) });
    for (const ns of ["ns:5", "ns:6"]) tune(j, ns);
    j.markOverride(override("ns:5"));
    const written: string[] = [];
    const io = { read: () => TUNED, write: (_s: string, ns: string) => void written.push(ns) };
    const live = liveCookies({ "ns:5": undefined, "ns:6": 7n }).of;
    const { log, lines } = recordingLog();
    assert.equal(pruneReusedNetns(j, live, log), 0);
    const dry = vettedRollbackPlan(j, io, () => null, live);
    assert.deepEqual(dry.restore.map((s) => s.netns), ["ns:6"]);
    assert.equal(dry.skipped.find((s) => s.netns === "ns:5")?.code, "unidentified");
    const r = rollbackFromJournal(j, io, log, () => null, live);
    assert.deepEqual(written, ["ns:6"]);
    assert.deepEqual(r.skipped.map((s) => [s.netns, s.code]), [["ns:5", "unidentified"]]);
    assert.ok(
      lines.some((l) => /left .* in non-global ns \(inode 5\) for now/.test(l)),
      lines.join("\n"),
    );
    assert.deepEqual(j.changedEntries().map((e) => e.netns), ["ns:5"], "kept for the next one");
    assert.equal(j.overrides().length, 1);
    // Told later as its own namespace: the next rollback restores it.
    const again = rollbackFromJournal(j, io, log, () => null, cookies({ "ns:5": 123n }));
    assert.deepEqual(again.restored.map((s) => s.netns), ["ns:5"]);
    j.close();
  });
});
