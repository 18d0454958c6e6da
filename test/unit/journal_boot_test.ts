/**
 * Namespace records of an earlier boot: inode numbers and cookies restart at boot, so after a
 * reboot a record of a dead namespace can name a new one by both. Read on another boot, such a
 * record is never written into any namespace, never holds as an override, and is pruned; the
 * host's records are not touched. The boot id is faked (JournalOptions.bootId).
 */
import assert from "node:assert/strict";
import { Journal, JournalError, type OverrideRecord } from "../../src/daemon/journal.ts";
import { pruneReusedNetns, recordIsFromEarlierBoot } from "../../src/daemon/netns_reuse.ts";
import { rollbackFromJournal, vettedRollbackPlan } from "../../src/daemon/rollback.ts";
import { recordingLog } from "../support/fake_context.ts";
import { ORIGINAL, override, RMEM, tune, TUNED } from "../support/journal_records.ts";
import { withTempDir } from "../support/temp_dir.ts";

const WMEM = "net.ipv4.tcp_wmem";
const BOOT_A = "0f6c5a5e-8a9b-4c3d-9e2f-000000000001";
const BOOT_B = "0f6c5a5e-8a9b-4c3d-9e2f-000000000002";

/** The same inode and cookie in both boots: what a reboot can give the first namespaces. */
const sameCookie = () => 2n;

const open = (dir: string, boot: string | null) =>
  Journal.open(dir, { netnsCookie: sameCookie, bootId: () => boot });

/** A journal written in boot A: the host and namespace ns:5 tuned, overrides in ns:5 and global. */
function bootA(dir: string) {
  const j = open(dir, BOOT_A);
  for (const ns of ["global", "ns:5"]) tune(j, ns);
  for (const ns of ["global", "ns:5", "any"]) j.markOverride(override(ns));
  j.close();
}

/** Every live value is what we last wrote: a rollback would restore each it is allowed to. */
function fakeIo() {
  const reads: string[] = [];
  const writes: string[] = [];
  return {
    reads,
    writes,
    io: {
      read: (_s: string, ns: string) => (reads.push(ns), TUNED),
      write: (_s: string, ns: string) => void writes.push(ns),
    },
  };
}

Deno.test("decision: a record of another boot is gone; no boot on either side reads as before", () => {
  assert.equal(recordIsFromEarlierBoot(BOOT_A, BOOT_B), true);
  assert.equal(recordIsFromEarlierBoot(BOOT_A, BOOT_A), false, "this boot");
  assert.equal(recordIsFromEarlierBoot(undefined, BOOT_B), false, "an old record: as before");
  assert.equal(recordIsFromEarlierBoot(BOOT_A, null), false, "this boot unknown (no /proc)");
});

Deno.test("journal: new non-global records carry this boot; the host's and 'any' do not", () => {
  withTempDir("bpfp-boot-", (dir) => {
    bootA(dir);
    const state = JSON.parse(Deno.readTextFileSync(`${dir}/state.json`));
    assert.equal(state.version, 2, "an optional field: the format version stays 2");
    const boots = (list: { netns: string; boot?: string }[]) =>
      Object.fromEntries(list.map((r) => [r.netns, r.boot]));
    assert.deepEqual(boots(state.entries), { global: undefined, "ns:5": BOOT_A });
    assert.deepEqual(boots(state.overrides), { global: undefined, "ns:5": BOOT_A, any: undefined });
    const again = open(dir, BOOT_A);
    assert.equal(again.entry("ns:5", RMEM)?.boot, BOOT_A, "read back");
    assert.equal(again.isFromEarlierBoot(again.entry("ns:5", RMEM)!), false);
    again.close();
    const unknown = open(dir, null);
    unknown.recordOriginal("ns:6", RMEM, "tcp_buffer", ORIGINAL, TUNED);
    assert.equal(unknown.entry("ns:6", RMEM)?.boot, undefined, "no boot known: none stored");
    unknown.close();
  });
});

Deno.test("rollback on a later boot never writes an earlier boot's namespace record, and says why", () => {
  withTempDir("bpfp-boot-", (dir) => {
    bootA(dir);
    const j = open(dir, BOOT_B);
    const dry = fakeIo();
    const plan = vettedRollbackPlan(j, dry.io, () => null, sameCookie);
    assert.deepEqual(plan.restore.map((s) => s.netns), ["global"], "the host's entry only");
    const skip = plan.skipped.find((s) => s.netns === "ns:5");
    assert.equal(skip?.code, "unreadable");
    assert.match(skip?.reason ?? "", /namespace is gone \(it was of an earlier boot/);
    assert.deepEqual(dry.reads, ["global"], "the earlier boot's namespace is not even read");

    const run = fakeIo();
    const { log, lines } = recordingLog();
    const r = rollbackFromJournal(j, run.io, log, () => null, sameCookie);
    assert.deepEqual(run.writes, ["global"]);
    assert.deepEqual(r.restored.map((s) => s.netns), ["global"]);
    assert.deepEqual(r.skipped.map((s) => s.netns), ["ns:5"], "reported, not dropped silently");
    assert.ok(
      lines.some((l) =>
        l.startsWith("N left 'net.ipv4.tcp_rmem' in non-global ns (inode 5) alone: its namespace")
      ),
      lines.join("\n"),
    );
    assert.deepEqual(j.changedEntries(), [], "both forgotten");
    assert.deepEqual(j.overrides().map((o) => o.netns).sort(), ["any", "global"], "pruned");
    j.close();
  });
});

Deno.test("without boots recorded (an older file) the record counts as this boot's, as before", () => {
  withTempDir("bpfp-boot-", (dir) => {
    const j = open(dir, null);
    tune(j, "ns:5");
    j.close();
    assert.doesNotMatch(Deno.readTextFileSync(`${dir}/state.json`), /"boot"/);
    const later = open(dir, BOOT_B);
    const plan = vettedRollbackPlan(later, fakeIo().io, () => null, sameCookie);
    assert.deepEqual(plan.restore.map((s) => s.netns), ["ns:5"]);
    later.close();
  });
});

Deno.test("an earlier boot's namespace override does not hold; the host's and 'any' do", () => {
  withTempDir("bpfp-boot-", (dir) => {
    bootA(dir);
    const same = open(dir, BOOT_A);
    assert.equal(same.isOverridden("ns:5", RMEM), true, "in its own boot it holds");
    same.close();
    const j = open(dir, BOOT_B);
    const held = (o: OverrideRecord) => j.isTunerOverridden(o.netns, o.tuner);
    assert.deepEqual(j.overrides().map((o) => [o.netns, held(o)]), [
      ["global", true],
      ["ns:5", false],
      ["any", true],
    ]);
    j.close();
  });
});

Deno.test("pruneNetns drops an earlier boot's namespace records unasked, and only those", () => {
  withTempDir("bpfp-boot-", (dir) => {
    bootA(dir);
    const old = open(dir, null); // records without a boot, in ns:7 and ns:8
    for (const ns of ["ns:7", "ns:8"]) tune(old, ns);
    old.close();
    const j = open(dir, BOOT_B);
    // This boot's namespace with the earlier ns:5's inode and cookie: another sysctl tuned.
    j.recordOriginal("ns:5", WMEM, "tcp_buffer", ORIGINAL, TUNED);
    j.markOverride({ ...override("ns:5"), sysctl: WMEM });
    const asked: string[] = [];
    const n = j.pruneNetns((ns) => (asked.push(ns), ns === "ns:8"));
    assert.equal(n, 3, "the earlier ns:5's entry and override, ns:8's entry");
    assert.deepEqual(asked.sort(), ["ns:5", "ns:7", "ns:8"], "each asked once, for this boot");
    const keys = (l: { netns: string; sysctl: string }[]) => l.map((r) => `${r.netns} ${r.sysctl}`);
    assert.deepEqual(keys(j.changedEntries()).sort(), [
      `global ${RMEM}`,
      `ns:5 ${WMEM}`,
      `ns:7 ${RMEM}`,
    ]);
    assert.deepEqual(keys(j.overrides()).sort(), [`any ${RMEM}`, `global ${RMEM}`, `ns:5 ${WMEM}`]);
    j.close();
  });
});

Deno.test("pruneReusedNetns (rollback's prune) takes an earlier boot's records as well", () => {
  withTempDir("bpfp-boot-", (dir) => {
    bootA(dir);
    const j = open(dir, BOOT_B);
    const { log, lines } = recordingLog();
    assert.equal(pruneReusedNetns(j, sameCookie, log), 2, "ns:5's entry and override");
    assert.deepEqual(lines, [], "not called a reused inode");
    j.close();
  });
});

Deno.test("recordOriginal over an earlier boot's entry records the live value as the original", () => {
  withTempDir("bpfp-boot-", (dir) => {
    bootA(dir);
    const j = open(dir, BOOT_B);
    const now = [4096, 87380, 4194304];
    assert.equal(j.recordOriginal("ns:5", RMEM, "tcp_buffer", now, TUNED), true, "a new entry");
    const e = j.entry("ns:5", RMEM)!;
    assert.deepEqual([e.original, e.boot, e.changes], [now, BOOT_B, 0]);
    assert.equal(j.recordOriginal("global", RMEM, "tcp_buffer", now, TUNED), false);
    assert.deepEqual(j.entry("global", RMEM)?.original, ORIGINAL, "the host's entry is kept");
    j.close();
    const again = open(dir, BOOT_B);
    assert.deepEqual(again.entry("ns:5", RMEM)?.original, now, "as recorded in the files");
    again.close();
  });
});

Deno.test("journal: a malformed boot is a corrupt journal, named by field", () => {
  withTempDir("bpfp-boot-", (dir) => {
    bootA(dir);
    const file = `${dir}/state.json`;
    const text = Deno.readTextFileSync(file);
    for (const bad of ['""', "12", '"a b"', `"${"x".repeat(65)}"`]) {
      Deno.writeTextFileSync(file, text.replace(`"boot":"${BOOT_A}"`, `"boot":${bad}`));
      assert.throws(() => open(dir, BOOT_B), (e: unknown) => {
        assert.ok(e instanceof JournalError);
        assert.match(e.message, /entries\[1\]\.boot/);
        return true;
      }, bad);
    }
  });
});
