import assert from "node:assert/strict";
import {
  Journal,
  JournalError,
  type ReadLive,
  STATE_FORMAT,
  type SysctlValue,
} from "../../src/daemon/journal.ts";
import { VERSION } from "../../src/version.ts";
import { inTempDir } from "../support/temp_dir.ts";

const RMEM = "net.ipv4.tcp_rmem";
const WMEM = "net.ipv4.tcp_wmem";

const withDir = (fn: (dir: string) => void | Promise<void>) => inTempDir("bpfp-journal-", fn);

/**
 * Two handles on one temp directory, as the daemon and another process (the CLI) hold them:
 * `j` the daemon's, `other` the other's; both closed at the end.
 */
function withTwoHandles(
  fn: (j: Journal, other: Journal, dir: string) => void,
): () => Promise<void> {
  return withDir((dir) => {
    const j = Journal.open(dir);
    const other = Journal.open(dir);
    try {
      fn(j, other, dir);
    } finally {
      j.close();
      other.close();
    }
  });
}

function journalError(fn: () => unknown): JournalError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof JournalError, `expected JournalError, got ${err}`);
    return err;
  }
  assert.fail("expected a JournalError");
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** A fake live system: (netns, sysctl) → value. */
function live(values: Record<string, SysctlValue | null>): ReadLive {
  return (netns, sysctl) => {
    const v = values[`${netns} ${sysctl}`];
    return v === undefined ? null : v;
  };
}

Deno.test(
  "open creates the directory 0700; a record appends to state.log 0600; close folds it into state.json",
  withDir((base) => {
    const dir = `${base}/var/lib/bpfpilot`;
    const j = Journal.open(dir);
    assert.equal(Deno.statSync(dir).mode! & 0o777, 0o700);
    assert.ok(!names(dir).includes("state.json"), "nothing to record yet, no file");
    assert.equal(
      j.recordOriginal("global", "net/ipv4/tcp_rmem", "tcp_buffer", [4096, 131072, 6291456]),
      true,
    );
    assert.deepEqual(names(dir), ["state.lock", "state.log"], "one append, no temp file");
    assert.equal(Deno.statSync(`${dir}/state.log`).mode! & 0o777, 0o600);
    j.close();
    assert.deepEqual(names(dir), ["state.json", "state.lock", "state.log"]);
    assert.equal(Deno.statSync(`${dir}/state.log`).size, 0, "folded into state.json");
    assert.equal(Deno.statSync(`${dir}/state.json`).mode! & 0o777, 0o600);
    const raw = JSON.parse(Deno.readTextFileSync(`${dir}/state.json`));
    assert.equal(raw.format, STATE_FORMAT);
    assert.equal(raw.version, 2);
    assert.equal(raw.logSeq, 1);
    assert.equal(raw.productVersion, VERSION);
    assert.deepEqual(raw.entries[0].original, [4096, 131072, 6291456]);
    assert.equal(raw.entries[0].sysctl, RMEM);
    assert.deepEqual(raw.overrides, []);
  }),
);

Deno.test(
  "the original is recorded the first time only; writes are counted",
  withDir((dir) => {
    let t = 0;
    const j = Journal.open(dir, { now: () => new Date(Date.UTC(2025, 0, 1, 0, 0, t++)) });
    assert.equal(j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]), true);
    assert.equal(j.entry("global", RMEM)!.pending!.toString(), "1,2,4");
    j.recordWritten("global", RMEM, [1, 2, 4]);
    assert.equal(j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 4], [1, 2, 5]), false);
    j.recordWritten("global", RMEM, [1, 2, 5]);
    const e = Journal.open(dir).entry("global", RMEM)!;
    assert.deepEqual(e.original, [1, 2, 3]);
    assert.deepEqual(e.lastWritten, [1, 2, 5]);
    assert.equal(e.pending, null);
    assert.equal(e.changes, 2);
    assert.match(e.recordedAt, /^2025-01-01T00:00:0\d\.000Z$/);
    assert.ok(e.changedAt! > e.recordedAt);
    assert.throws(
      () => j.recordWritten("global", WMEM, [1, 2, 3]),
      /no original value of net\.ipv4\.tcp_wmem .*call recordOriginal before writing/,
    );
    assert.throws(() => j.recordOriginal("global", WMEM, "tcp_buffer", [NaN]), TypeError);
    assert.throws(() => j.recordOriginal("", WMEM, "tcp_buffer", [1]), TypeError);
    assert.equal(Journal.open(dir).changedEntries().length, 1);
  }),
);

Deno.test(
  "two handles on one directory (daemon + CLI) never lose each other's updates",
  withTwoHandles((daemon, cli) => {
    daemon.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    cli.markOverride({
      netns: "global",
      sysctl: WMEM,
      tuner: "tcp_buffer",
      pid: 42,
      comm: "sysctl",
    });
    daemon.recordOriginal("4026531840", RMEM, "tcp_buffer", [7, 8, 9]);
    // The daemon's later write was built on the file as it was then, keeping the CLI's override.
    assert.equal(cli.changedEntries().length, 2);
    assert.equal(daemon.isOverridden("global", WMEM), true);
    assert.equal(cli.clearOverrides("tcp_buffer"), 1);
    assert.equal(daemon.isOverridden("global", WMEM), false, "daemon sees the CLI's change");
  }),
);

Deno.test(
  "changedKeys: the pairs changedEntries has, another handle's too, read from the journal's index",
  withTwoHandles((daemon, cli) => {
    const fromEntries = (j: Journal) =>
      j.changedEntries().map((e) => `${e.netns} ${e.sysctl}`).sort();
    const pairs = [["global", RMEM], ["global", WMEM], ["4026531840", WMEM], ["4026531840", RMEM]];
    const has = (j: Journal) => {
      const keys = j.changedKeys();
      return pairs.filter(([n, s]) => keys.has(n, s)).map(([n, s]) => `${n} ${s}`).sort();
    };
    assert.deepEqual(has(cli), []);
    assert.deepEqual([...cli.changedKeys().namespaces()], []);
    daemon.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    daemon.recordOriginal("4026531840", "net/ipv4/tcp_wmem", "tcp_buffer", [7, 8, 9]);
    assert.deepEqual(has(cli), ["4026531840 net.ipv4.tcp_wmem", `global ${RMEM}`]);
    assert.deepEqual(has(cli), fromEntries(cli));
    assert.deepEqual([...cli.changedKeys().namespaces()].sort(), ["4026531840", "global"]);
    assert.equal(cli.changedKeys().has("4026531840", "net/ipv4/tcp_wmem"), true, "any spelling");
    // A caller scribbling on the namespaces it got changes nothing in the journal.
    daemon.changedKeys().namespaces().add("4026532000");
    assert.deepEqual([...daemon.changedKeys().namespaces()].sort(), ["4026531840", "global"]);
    cli.forget("global", RMEM);
    assert.deepEqual(has(daemon), ["4026531840 net.ipv4.tcp_wmem"], "follows the other's forget");
    assert.deepEqual([...daemon.changedKeys().namespaces()], ["4026531840"]);
    // A view follows its own handle's changes, and a recordNotWritten that drops the entry.
    const view = daemon.changedKeys();
    daemon.recordOriginal("global", WMEM, "tcp_buffer", [4, 5, 6], [4, 5, 7]);
    assert.equal(view.has("global", WMEM), true);
    daemon.recordNotWritten("global", WMEM);
    assert.equal(view.has("global", WMEM), false);
    assert.deepEqual(has(daemon), fromEntries(daemon));
  }),
);

Deno.test(
  "overrides: upsert, lookup, clear by tuner or sysctl; they survive restarts and rollback",
  withDir((dir) => {
    const j = Journal.open(dir);
    j.markOverride({ netns: "global", sysctl: RMEM, tuner: "tcp_buffer", pid: 10, comm: "sysctl" });
    j.markOverride({ netns: "global", sysctl: RMEM, tuner: "tcp_buffer", pid: 11, comm: "vi %n" });
    j.markOverride({
      netns: "77",
      sysctl: "net/core/rmem_max",
      tuner: "udp_buffer",
      pid: 12,
      comm: "x",
    });
    const again = Journal.open(dir);
    assert.deepEqual(
      again.overrides().map((o) => [o.netns, o.sysctl, o.tuner, o.pid, o.comm]),
      [["global", RMEM, "tcp_buffer", 11, "vi %n"], [
        "77",
        "net.core.rmem_max",
        "udp_buffer",
        12,
        "x",
      ]],
    );
    assert.equal(again.isOverridden("global", "net/ipv4/tcp_rmem"), true);
    assert.equal(again.isOverridden("77", RMEM), false);
    assert.equal(again.isTunerOverridden("77", "udp_buffer"), true);
    assert.equal(again.isTunerOverridden("global", "udp_buffer"), false);

    again.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3]);
    again.planRollback(live({}));
    again.forget("global", RMEM);
    assert.equal(again.overrides().length, 2, "rollback and forget leave overrides alone");

    assert.equal(again.clearOverrides("net/core/rmem_max"), 1);
    assert.equal(again.clearOverrides("net.core.rmem_max"), 0);
    assert.equal(again.clearOverrides("tcp_buffer"), 1);
    assert.deepEqual(Journal.open(dir).overrides(), []);
  }),
);

Deno.test(
  "planRollback: restore what we wrote, skip what someone else changed",
  withDir((dir) => {
    let t = 0;
    const j = Journal.open(dir, { now: () => new Date(Date.UTC(2025, 0, 1, 0, 0, t++)) });
    j.recordOriginal("global", RMEM, "tcp_buffer", [4096, 131072, 6291456], [
      4096,
      131072,
      7864320,
    ]);
    j.recordWritten("global", RMEM, [4096, 131072, 7864320]);
    j.recordOriginal("global", WMEM, "tcp_buffer", [4096, 16384, 4194304], [4096, 16384, 5242880]);
    j.recordWritten("global", WMEM, [4096, 16384, 5242880]);
    j.recordOriginal("global", "net.ipv4.tcp_congestion_control", "tcp_conn", "cubic", "bbr");
    j.recordWritten("global", "net.ipv4.tcp_congestion_control", "bbr");

    const plan = j.planRollback(live({
      [`global ${RMEM}`]: "4096\t131072\t7864320\n", // raw kernel text compares equal
      [`global ${WMEM}`]: [4096, 16384, 9999999],
      "global net.ipv4.tcp_congestion_control": "bbr",
    }));
    assert.deepEqual(plan.restore, [
      {
        netns: "global",
        sysctl: "net.ipv4.tcp_congestion_control",
        tuner: "tcp_conn",
        from: "bbr",
        to: "cubic",
      },
      {
        netns: "global",
        sysctl: RMEM,
        tuner: "tcp_buffer",
        from: "4096\t131072\t7864320\n",
        to: [4096, 131072, 6291456],
      },
    ], "most recent change first");
    assert.deepEqual(plan.skipped, [{
      netns: "global",
      sysctl: WMEM,
      tuner: "tcp_buffer",
      code: "changed",
      reason: "changed since by someone else (now 4096 16384 9999999)",
    }]);
    assert.equal(j.changedEntries().length, 3, "planning changes nothing");
    assert.equal(j.forget("global", RMEM), true);
    assert.equal(j.forget("global", RMEM), false);
    assert.equal(Journal.open(dir).changedEntries().length, 2);
  }),
);

Deno.test(
  "planRollback after a crash between recordOriginal and the write (or before recordWritten)",
  withDir((dir) => {
    const j = Journal.open(dir);
    // Crash before the write: the live value is still the original.
    j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    // Crash after the write, before recordWritten: the live value is the pending one.
    j.recordOriginal("global", WMEM, "tcp_buffer", [5, 6, 7], [5, 6, 8]);
    // Second write of an entry crashed after the write: live is the new pending value.
    j.recordOriginal("9", RMEM, "tcp_buffer", [1, 1, 1], [1, 1, 2]);
    j.recordWritten("9", RMEM, [1, 1, 2]);
    j.recordOriginal("9", RMEM, "tcp_buffer", [1, 1, 2], [1, 1, 3]);

    const reopened = Journal.open(dir); // as `bpfpilot rollback` after kill -9
    const plan = reopened.planRollback(live({
      [`global ${RMEM}`]: [1, 2, 3],
      [`global ${WMEM}`]: [5, 6, 8],
      [`9 ${RMEM}`]: [1, 1, 3],
    }));
    assert.deepEqual(
      plan.restore.map((s) => [s.netns, s.sysctl, s.from, s.to]).sort(),
      [["9", RMEM, [1, 1, 3], [1, 1, 1]], ["global", WMEM, [5, 6, 8], [5, 6, 7]]],
    );
    assert.deepEqual(plan.skipped, [{
      netns: "global",
      sysctl: RMEM,
      tuner: "tcp_buffer",
      code: "at-original",
      reason: "already at original",
    }]);
  }),
);

Deno.test(
  "planRollback: unreadable sysctls and vanished namespaces are skipped, not fatal",
  withDir((dir) => {
    const j = Journal.open(dir);
    j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    j.recordOriginal("gone", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    const plan = j.planRollback((netns) => {
      if (netns === "gone") return null;
      throw new Error("writing net.ipv4.tcp_rmem needs root");
    });
    assert.deepEqual(plan.restore, []);
    assert.deepEqual(plan.skipped.map((s) => [s.netns, s.code, s.reason]).sort(), [
      ["global", "unreadable", "cannot read it now: writing net.ipv4.tcp_rmem needs root"],
      ["gone", "unreadable", "cannot read it now (the sysctl or its network namespace is gone)"],
    ]);
  }),
);

const BAD_FILES: [string, string, JournalError["kind"], RegExp][] = [
  ["garbage", "{not json", "corrupt", /is damaged: it is not valid JSON/],
  ["empty", "", "corrupt", /is damaged: it is empty/],
  ["zeros", "\0\0\0\0", "corrupt", /not valid JSON/],
  [
    "foreign object",
    '{"hello": 1}',
    "foreign",
    /is not a bpfpilot state file \(its "format" is missing/,
  ],
  ["foreign array", "[1,2]", "foreign", /holds no JSON object/],
  [
    "other format",
    '{"format": "other-tool", "version": 1}',
    "foreign",
    /"format" is "other-tool"/,
  ],
  [
    "newer",
    `{"format": "${STATE_FORMAT}", "version": 3, "productVersion": "9.0.0"}`,
    "newer",
    /written by a newer bpfpilot 9\.0\.0 \(state version 3\).*Upgrade bpfpilot/,
  ],
  [
    "bad version",
    `{"format": "${STATE_FORMAT}", "version": "1"}`,
    "corrupt",
    /"version" is "1"/,
  ],
];

function validState(patch: (s: Record<string, unknown>) => void): string {
  const s: Record<string, unknown> = {
    format: STATE_FORMAT,
    version: 1,
    productVersion: "0.1.0",
    updatedAt: "2025-01-01T00:00:00.000Z",
    entries: [{
      netns: "global",
      sysctl: RMEM,
      tuner: "tcp_buffer",
      original: [1, 2, 3],
      lastWritten: [1, 2, 4],
      pending: null,
      changes: 1,
      recordedAt: "2025-01-01T00:00:00.000Z",
      changedAt: "2025-01-01T00:00:01.000Z",
    }],
    overrides: [{
      netns: "global",
      sysctl: WMEM,
      tuner: "tcp_buffer",
      pid: 4,
      comm: "sysctl",
      at: "2025-01-01T00:00:00.000Z",
    }],
  };
  patch(s);
  return JSON.stringify(s);
}

// deno-lint-ignore no-explicit-any
type Any = any;
const BAD_FIELDS: [string, (s: Any) => void, RegExp][] = [
  [
    "original type",
    (s) => s.entries[0].original = { a: 1 },
    /entries\[0\]\.original should be a value/,
  ],
  ["float value", (s) => s.entries[0].lastWritten = [1.5], /entries\[0\]\.lastWritten/],
  ["sysctl name", (s) => s.entries[0].sysctl = "net/ipv4/tcp_rmem", /entries\[0\]\.sysctl/],
  ["changes", (s) => s.entries[0].changes = -1, /entries\[0\]\.changes should be a count/],
  ["timestamp", (s) => s.entries[0].recordedAt = "yesterday", /entries\[0\]\.recordedAt/],
  ["duplicate", (s) => s.entries.push(s.entries[0]), /entries\[1\] repeats net\.ipv4\.tcp_rmem/],
  ["override pid", (s) => s.overrides[0].pid = "4", /overrides\[0\]\.pid should be a process id/],
  ["entries missing", (s) => delete s.entries, /entries should be a list, found nothing/],
];

Deno.test(
  "the valid reference state used below opens",
  withDir((dir) => {
    Deno.writeTextFileSync(`${dir}/state.json`, validState(() => {}));
    const j = Journal.open(dir);
    assert.equal(j.changedEntries().length, 1);
    assert.equal(j.isOverridden("global", WMEM), true);
  }),
);

for (
  const [label, text, kind, message] of [
    ...BAD_FILES,
    ...BAD_FIELDS.map(([l, p, m]) => [l, validState(p), "corrupt", m] as const),
  ]
) {
  Deno.test(
    `invalid state file (${label}) → JournalError ${kind}; file byte-identical`,
    withDir((dir) => {
      const file = `${dir}/state.json`;
      const bytes = new TextEncoder().encode(text);
      Deno.writeFileSync(file, bytes);
      const err = journalError(() => Journal.open(dir));
      assert.equal(err.kind, kind);
      assert.equal(err.file, file);
      assert.match(err.message, message);
      assert.ok(err.message.startsWith(file), "message names the file first");
      assert.doesNotMatch(err.message, /os error|at \w+ \(/);
      if (kind !== "newer") assert.ok(err.message.includes(`mv ${file} ${file}.bad`), err.message);
      assert.deepEqual(Deno.readFileSync(file), bytes);
      assert.deepEqual(names(dir), ["state.json"], "no temp or lock files");
    }),
  );
}

Deno.test(
  "a file that goes bad while running: changes fail, nothing is overwritten",
  withDir((dir) => {
    const j = Journal.open(dir);
    j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3]);
    const file = `${dir}/state.json`;
    Deno.writeTextFileSync(file, '{"format": "bpfpilot-state", "version": 7}');
    const before = Deno.readFileSync(file);
    assert.equal(journalError(() => j.recordWritten("global", RMEM, [1, 2, 4])).kind, "newer");
    assert.equal(
      journalError(() =>
        j.markOverride({ netns: "global", sysctl: RMEM, tuner: "t", pid: 1, comm: "c" })
      ).kind,
      "newer",
    );
    assert.equal(journalError(() => j.isOverridden("global", RMEM)).kind, "newer");
    assert.deepEqual(Deno.readFileSync(file), before);
  }),
);

Deno.test(
  "quarantine moves a bad file aside on request; then a fresh journal starts",
  withDir((dir) => {
    const file = `${dir}/state.json`;
    Deno.writeTextFileSync(file, "{broken");
    const moved = Journal.quarantine(dir, new Date(Date.UTC(2025, 10, 25, 3, 4, 5)));
    assert.equal(moved, `${file}.corrupt-20251125T030405Z`);
    assert.equal(Deno.readTextFileSync(moved), "{broken");
    Deno.writeTextFileSync(file, "{broken again");
    const second = Journal.quarantine(dir, new Date(Date.UTC(2025, 10, 25, 3, 4, 5)));
    assert.equal(second, `${file}.corrupt-20251125T030405Z-1`);
    assert.deepEqual(Journal.open(dir).changedEntries(), []);
    const err = journalError(() => Journal.quarantine(dir));
    assert.equal(err.kind, "io");
    assert.match(err.message, /there is no state file at .*state\.json to move aside/);
  }),
);

Deno.test(
  "open removes temp files left by a writer that crashed mid-write",
  withDir((dir) => {
    Deno.writeTextFileSync(`${dir}/.state.json.tmp-999-abcd`, '{"half');
    Journal.open(dir);
    assert.deepEqual(names(dir), ["state.lock"]);
  }),
);

Deno.test(
  "I/O failures name the path and the fix, without errno noise",
  withDir((dir) => {
    const notADir = `${dir}/file`;
    Deno.writeTextFileSync(notADir, "");
    const err = journalError(() => Journal.open(`${notADir}/sub`));
    assert.equal(err.kind, "io");
    assert.match(err.message, /^cannot create the state directory .*\/file\/sub: /);
    assert.doesNotMatch(err.message, /os error/);

    Deno.mkdirSync(`${dir}/d/state.json`, { recursive: true });
    const isDir = journalError(() => Journal.open(`${dir}/d`));
    assert.equal(isDir.kind, "io");
    assert.match(isDir.message, /cannot read .*state\.json: it is a directory/);
  }),
);

Deno.test(
  "daemon claim: a second daemon is refused with the holder's pid",
  withDir((dir) => {
    const first = Journal.open(dir);
    const second = Journal.open(dir);
    assert.equal(Journal.daemonPid(dir), null);
    first.claimDaemon();
    assert.equal(Journal.daemonPid(dir), Deno.pid);
    const err = journalError(() => second.claimDaemon());
    assert.equal(err.kind, "busy");
    assert.match(
      err.message,
      new RegExp(`another bpfpilot daemon \\(pid ${Deno.pid}\\) is already running`),
    );
    first.close();
    assert.equal(Journal.daemonPid(dir), null);
    second.claimDaemon();
    second.close();
  }),
);

Deno.test(
  "kill -9 of a daemon releases its claim and keeps what it recorded",
  withDir(async (dir) => {
    const journalUrl = new URL("../../src/daemon/journal.ts", import.meta.url).href;
    const script = `
    import { Journal } from ${JSON.stringify(journalUrl)};
    const j = Journal.open(${JSON.stringify(dir)});
    j.claimDaemon();
    j.recordOriginal("global", "net.ipv4.tcp_rmem", "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    console.log("ready");
    setInterval(() => {}, 1000);
  `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-check", script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    try {
      const reader = child.stdout.getReader();
      const { value } = await reader.read();
      assert.equal(new TextDecoder().decode(value).trim(), "ready");
      reader.releaseLock();
      assert.equal(Journal.daemonPid(dir), child.pid);
    } finally {
      child.kill("SIGKILL");
      await child.status;
      await child.stdout.cancel().catch(() => {});
    }
    assert.equal(Journal.daemonPid(dir), null);
    const plan = Journal.open(dir).planRollback(() => [1, 2, 4]);
    assert.deepEqual(plan.restore.map((s) => [s.sysctl, s.from, s.to]), [[RMEM, [1, 2, 4], [
      1,
      2,
      3,
    ]]]);
  }),
);

Deno.test(
  "concurrent writers in separate processes: the lock keeps every update",
  withDir(async (dir) => {
    const journalUrl = new URL("../../src/daemon/journal.ts", import.meta.url).href;
    const writer = (id: number) => `
      import { Journal } from ${JSON.stringify(journalUrl)};
      const j = Journal.open(${JSON.stringify(dir)});
      for (let i = 0; i < 10; i++) {
        j.markOverride({ netns: "ns${id}", sysctl: "net.core.rmem_max", tuner: "t" + i, pid: ${id}, comm: "w" });
        j.recordOriginal("ns${id}", "net.ipv4.tcp_rmem", "tcp_buffer", [i, i, i]);
      }
    `;
    const children = [1, 2, 3, 4].map((id) =>
      new Deno.Command(Deno.execPath(), { args: ["eval", "--no-check", writer(id)] }).output()
    );
    for (const out of await Promise.all(children)) {
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    }
    const j = Journal.open(dir);
    assert.equal(j.overrides().length, 40);
    assert.deepEqual(
      j.changedEntries().map((e) => [e.netns, e.original]).sort(),
      [["ns1", [0, 0, 0]], ["ns2", [0, 0, 0]], ["ns3", [0, 0, 0]], ["ns4", [0, 0, 0]]],
    );
    assert.deepEqual(names(dir), ["state.lock", "state.log"], "no temp files");
  }),
);

Deno.test("an override for every namespace (ANY_NETNS) holds in each of them", () => {
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-journal-any-" });
  try {
    const j = Journal.open(dir);
    j.markOverride({
      netns: "any",
      sysctl: "net.ipv4.tcp_rmem",
      tuner: "tcp_buffer",
      pid: 0,
      comm: "x",
    });
    assert.equal(j.isOverridden("global", "net.ipv4.tcp_rmem"), true);
    assert.equal(j.isOverridden("ns:42", "net.ipv4.tcp_rmem"), true);
    assert.equal(j.isOverridden("global", "net.ipv4.tcp_wmem"), false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// --- the change log (state.log) -----------------------------------------------------------------

Deno.test(
  "a version 1 state file (no log) is read; changes append to the log; close writes version 2",
  withDir((dir) => {
    Deno.writeTextFileSync(`${dir}/state.json`, validState(() => {}));
    const j = Journal.open(dir);
    j.recordOriginal("global", WMEM, "tcp_buffer", [4, 5, 6], [4, 5, 7]);
    j.recordWritten("global", WMEM, [4, 5, 7]);
    assert.equal(
      JSON.parse(Deno.readTextFileSync(`${dir}/state.json`)).version,
      1,
      "the old file is left as it is until the log is folded in",
    );
    const other = Journal.open(dir);
    assert.deepEqual(other.changedEntries().map((e) => [e.sysctl, e.original, e.lastWritten]), [
      [RMEM, [1, 2, 3], [1, 2, 4]],
      [WMEM, [4, 5, 6], [4, 5, 7]],
    ]);
    assert.equal(other.isOverridden("global", WMEM), true, "the v1 file's override holds");
    j.close();
    const raw = JSON.parse(Deno.readTextFileSync(`${dir}/state.json`));
    assert.equal(raw.version, 2);
    assert.equal(raw.entries.length, 2);
    assert.equal(Deno.statSync(`${dir}/state.log`).size, 0);
    assert.deepEqual(other.changedEntries().length, 2, "a reader follows the compaction");
  }),
);

Deno.test(
  "a torn last log line (power loss mid-append) is ignored, then cut off by the next writer",
  withDir((dir) => {
    const j = Journal.open(dir);
    j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    const log = `${dir}/state.log`;
    const intact = Deno.readTextFileSync(log);
    Deno.writeTextFileSync(log, '{"s":2,"put":{"netns":"glo', { append: true });
    const reader = Journal.open(dir);
    assert.deepEqual(reader.entry("global", RMEM)!.pending, [1, 2, 4]);
    reader.recordWritten("global", RMEM, [1, 2, 4]);
    const lines = Deno.readTextFileSync(log).split("\n");
    assert.equal(lines[0], intact.trimEnd());
    assert.deepEqual(JSON.parse(lines[1]).s, 2, "appended where the torn record began");
    assert.deepEqual(Journal.open(dir).entry("global", RMEM)!.lastWritten, [1, 2, 4]);
  }),
);

Deno.test(
  "a writer whose last append ended the log still cuts a torn record left after it, and " +
    "appends after another writer's whole records",
  withDir((dir) => {
    const j = Journal.open(dir);
    const log = `${dir}/state.log`;
    const lines = () => Deno.readTextFileSync(log).split("\n").filter((l) => l !== "");
    j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    // A writer that died mid-append after j's append, longer than j's next record (j's next
    // append skips its fstat only when the log is as it left it).
    Deno.writeTextFileSync(log, `{"s":2,"put":{"netns":"${"x".repeat(2000)}`, { append: true });
    j.recordWritten("global", RMEM, [1, 2, 4]);
    assert.deepEqual(lines().map((l) => JSON.parse(l).s), [1, 2], "torn bytes cut, then appended");
    Journal.open(dir).recordOriginal("global", WMEM, "tcp_buffer", [4, 5, 6], [4, 5, 7]);
    j.batch(() => {
      j.recordOriginal("4026532100", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 5]);
      j.recordWritten("4026532100", RMEM, [1, 2, 5]);
    });
    j.recordWritten("global", WMEM, [4, 5, 7]);
    assert.deepEqual(lines().map((l) => JSON.parse(l).s), [1, 2, 3, 4, 5, 6]);
    const fresh = Journal.open(dir);
    assert.deepEqual(fresh.entry("global", RMEM)!.lastWritten, [1, 2, 4]);
    assert.deepEqual(fresh.entry("global", WMEM)!.lastWritten, [4, 5, 7]);
    assert.deepEqual(fresh.entry("4026532100", RMEM)!.lastWritten, [1, 2, 5]);
  }),
);

/** This process's descriptors open on `dir`'s state.lock (deleted ones included). */
function lockFds(dir: string): number {
  let n = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${e.name}`).startsWith(`${dir}/state.lock`)) n++;
    } catch { /* closed meanwhile */ }
  }
  return n;
}

/** Whether another open file description could take state.lock now. */
function lockFree(dir: string): boolean {
  const f = Deno.openSync(`${dir}/state.lock`, { read: true, write: true, create: true });
  try {
    return f.tryLockSync(true);
  } finally {
    f.close();
  }
}

Deno.test(
  "the daemon's journal keeps state.lock open between holds, free between them, and locks a " +
    "new state.lock when it was deleted",
  withDir((dir) => {
    const j = Journal.open(dir);
    try {
      j.claimDaemon();
      for (let i = 0; i < 3; i++) {
        j.recordOriginal(`40265321${i}`, RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
        assert.ok(lockFree(dir), "free between holds");
        assert.equal(lockFds(dir), 1, "one descriptor, kept");
      }
      j.batch(() => {
        j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
        assert.ok(!lockFree(dir), "held within the batch");
      });
      assert.ok(lockFree(dir));
      Deno.removeSync(`${dir}/state.lock`);
      j.batch(() => {
        j.recordOriginal("global", WMEM, "tcp_buffer", [4, 5, 6], [4, 5, 7]);
        assert.ok(!lockFree(dir), "the new state.lock is the one held");
      });
      assert.equal(lockFds(dir), 1, "the deleted one closed");
      assert.ok(lockFree(dir));
    } finally {
      j.close();
    }
    assert.equal(lockFds(dir), 0, "closed with the journal");
    assert.equal(Journal.open(dir).changedEntries().length, 5);
  }),
);

Deno.test(
  "a damaged log record → JournalError naming state.log and the line; nothing is overwritten",
  withDir((dir) => {
    const j = Journal.open(dir);
    j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    const log = `${dir}/state.log`;
    Deno.writeTextFileSync(log, 'garbage\n{"s":9,"put":{}}\n', { append: true });
    const before = Deno.readFileSync(log);
    const err = journalError(() => Journal.open(dir));
    assert.equal(err.kind, "corrupt");
    assert.equal(err.file, log);
    assert.match(err.message, /state\.log is damaged: line 2 is not valid JSON/);
    assert.ok(err.message.includes(`mv ${log} ${log}.bad`), err.message);
    assert.equal(journalError(() => j.recordWritten("global", RMEM, [1, 2, 4])).kind, "corrupt");
    assert.deepEqual(Deno.readFileSync(log), before);
  }),
);

Deno.test(
  "a crash between writing the compacted state.json and emptying the log replays nothing twice",
  withDir((dir) => {
    const j = Journal.open(dir);
    j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    j.recordWritten("global", RMEM, [1, 2, 4]);
    const log = Deno.readTextFileSync(`${dir}/state.log`);
    j.close(); // compacts: state.json includes records 1 and 2, the log is emptied
    Deno.writeTextFileSync(`${dir}/state.log`, log); // as if the crash came before the emptying
    const e = Journal.open(dir).entry("global", RMEM)!;
    assert.equal(e.changes, 1);
    assert.deepEqual(e.lastWritten, [1, 2, 4]);
  }),
);

Deno.test(
  "the log is folded into state.json once it grows long; every change survives",
  withDir((dir) => {
    const j = Journal.open(dir);
    for (let i = 0; i < 300; i++) {
      j.recordOriginal("global", RMEM, "tcp_buffer", [1, 2, 3 + i], [1, 2, 4 + i]);
      j.recordWritten("global", RMEM, [1, 2, 4 + i]);
    }
    const raw = JSON.parse(Deno.readTextFileSync(`${dir}/state.json`));
    assert.ok(raw.logSeq >= 256, `compacted at ${raw.logSeq}`);
    const lines = Deno.readTextFileSync(`${dir}/state.log`).split("\n").length - 1;
    assert.equal(raw.logSeq + lines, 600);
    const e = Journal.open(dir).entry("global", RMEM)!;
    assert.deepEqual([e.original, e.lastWritten, e.changes], [[1, 2, 3], [1, 2, 303], 300]);
  }),
);

Deno.test(
  "kill -9 at arbitrary points of appends, batches and compactions: rollback restores every original",
  withDir(async (dir) => {
    const journalUrl = new URL("../../src/daemon/journal.ts", import.meta.url).href;
    // Entry k's original is [k, 0, 0]; each change writes [k, round, step]. Every other run
    // makes batches of 7 changes, as the daemon does per wake-up; runs 2-3 and 6-7 record them
    // as the daemon does (announce, the append before the write, no fdatasync), the others with
    // recordOriginal (fdatasync'ed, as the CLI's writers).
    const writer = (perBatch: number, daemon: boolean) => `
      import { Journal } from ${JSON.stringify(journalUrl)};
      const j = Journal.open(${JSON.stringify(dir)});
      console.log("ready");
      const change = (step) => {
        const k = step % 40, ns = "ns" + k;
        const cur = j.entry(ns, "net.ipv4.tcp_rmem")?.lastWritten ?? [k, 0, 0];
        const next = [k, 1, step + 1];
        if (${daemon}) {
          j.announce(ns, "net.ipv4.tcp_rmem", "tcp_buffer", cur, next);
          j.appendAnnounced();
        } else j.recordOriginal(ns, "net.ipv4.tcp_rmem", "tcp_buffer", cur, next);
        j.recordWritten(ns, "net.ipv4.tcp_rmem", next);
      };
      for (let step = 0;; step += ${perBatch}) {
        if (${perBatch} === 1) change(step);
        else j.batch(() => { for (let i = 0; i < ${perBatch}; i++) change(step + i); });
      }
    `;
    for (const [run, delay] of [5, 40, 90, 15, 160, 70, 25, 120].entries()) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["eval", "--no-check", writer(run % 2 ? 7 : 1, run % 4 >= 2)],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const reader = child.stdout.getReader();
      await reader.read();
      reader.releaseLock();
      await new Promise((r) => setTimeout(r, delay));
      child.kill("SIGKILL");
      await child.status;
      await child.stdout.cancel().catch(() => {});
      const j = Journal.open(dir);
      const entries = j.changedEntries();
      if (delay >= 40) assert.ok(entries.length > 0, "the writer got to record changes");
      // The live value after the kill: the pending write (it may have happened) or the last one.
      const liveOf = new Map(entries.map((e) => [e.netns, e.pending ?? e.lastWritten]));
      const plan = j.planRollback((netns) => liveOf.get(netns) ?? null);
      assert.equal(plan.skipped.length, 0, JSON.stringify(plan.skipped));
      for (const step of plan.restore) {
        const k = Number(step.netns.slice(2));
        assert.deepEqual(step.to, [k, 0, 0], `${step.netns} restores its original`);
      }
    }
  }),
);

/** Complete records in state.log. */
function logRecords(dir: string): number {
  return Deno.readTextFileSync(`${dir}/state.log`).split("\n").filter((l) => l !== "").length;
}

/** Whether another writer (another open file of state.lock, as `bpfpilot enable`) could lock it now. */
function lockIsFree(dir: string): boolean {
  const f = Deno.openSync(`${dir}/state.lock`, { read: true, write: true, create: true });
  try {
    const free = f.tryLockSync(true);
    if (free) f.unlockSync();
    return free;
  } finally {
    f.close();
  }
}

Deno.test(
  "a batch takes the lock at its first change and keeps it to its end; a recordWritten waits for the next recordOriginal's append and sync, or the end",
  withTwoHandles((j, reader, dir) => { // reader: as the CLI would read meanwhile
    const value = j.batch(() => {
      assert.equal(j.isOverridden("global", RMEM), false);
      assert.ok(lockIsFree(dir), "nothing changed yet: no lock taken");
      j.recordOriginal("global", RMEM, "tcp_buffer", [4096, 131072, 6291456], [4096, 131072, 8e6]);
      assert.equal(logRecords(dir), 1, "recordOriginal is on disk before it returns");
      assert.ok(!lockIsFree(dir), "held from the first change on");
      j.recordWritten("global", RMEM, [4096, 131072, 8e6]);
      assert.equal(logRecords(dir), 1, "the written record waits");
      assert.deepEqual(j.entry("global", RMEM)?.lastWritten, [4096, 131072, 8e6]);
      assert.equal(reader.entry("global", RMEM)?.pending?.toString(), "4096,131072,8000000");
      j.recordOriginal("global", WMEM, "tcp_buffer", [4096, 16384, 4194304], [4096, 16384, 5e6]);
      assert.equal(logRecords(dir), 3, "the waiting record went with the next durable one");
      j.recordWritten("global", WMEM, [4096, 16384, 5e6]);
      assert.equal(logRecords(dir), 3);
      return 42;
    });
    assert.equal(value, 42);
    assert.equal(logRecords(dir), 4, "the last record appended at the batch's end");
    assert.ok(lockIsFree(dir), "released at the end");
    for (const [sysctl, max] of [[RMEM, 8e6], [WMEM, 5e6]] as const) {
      const e = reader.entry("global", sysctl);
      assert.equal(e?.pending, null);
      assert.equal((e?.lastWritten as number[])[2], max);
    }
  }),
);

Deno.test(
  "a batch whose work throws still appends its records and releases the lock; its error goes on",
  withDir((dir) => {
    const j = Journal.open(dir);
    assert.throws(
      () =>
        j.batch(() => {
          j.recordOriginal("ns1", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
          j.recordWritten("ns1", RMEM, [1, 2, 4]);
          throw new Error("tuner failed");
        }),
      /tuner failed/,
    );
    assert.ok(lockIsFree(dir));
    assert.equal(logRecords(dir), 2);
    assert.deepEqual(Journal.open(dir).entry("ns1", RMEM)?.lastWritten, [1, 2, 4]);
    j.close();
  }),
);

Deno.test(
  "a batch long enough to compact: every entry and its last write survive (state.json holds the waiting records)",
  withDir((dir) => {
    const j = Journal.open(dir);
    j.batch(() => {
      for (let k = 0; k < 300; k++) {
        j.recordOriginal(`ns${k}`, RMEM, "tcp_buffer", [k, 0, 0], [k, 1, 1]);
        j.recordWritten(`ns${k}`, RMEM, [k, 1, 1]);
      }
    });
    const entries = Journal.open(dir).changedEntries();
    assert.equal(entries.length, 300);
    for (const e of entries) {
      const k = Number(e.netns.slice(2));
      assert.deepEqual([e.original, e.lastWritten, e.pending], [[k, 0, 0], [k, 1, 1], null]);
    }
    assert.ok(logRecords(dir) < 600, "compacted on the way");
    j.close();
  }),
);

Deno.test(
  "the log stays open between appends, and one another process replaced is left for the new one",
  withDir((dir) => {
    const j = Journal.open(dir); // the daemon
    j.recordOriginal("ns1", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    j.recordWritten("ns1", RMEM, [1, 2, 4]);
    const before = Deno.statSync(`${dir}/state.log`).ino;
    // `bpfpilot rollback` or `enable` meanwhile: its close folds the log into state.json and
    // replaces the log by a new, empty one.
    const cli = Journal.open(dir);
    cli.recordOriginal("ns2", RMEM, "tcp_buffer", [5, 6, 7], [5, 6, 8]);
    cli.close();
    assert.notEqual(Deno.statSync(`${dir}/state.log`).ino, before, "replaced");
    j.recordOriginal("ns3", RMEM, "tcp_buffer", [7, 8, 9], [7, 8, 10]);
    assert.equal(logRecords(dir), 1, "the new record is in the new log, not the replaced one");
    j.close();
    const entries = Journal.open(dir).changedEntries();
    assert.deepEqual(entries.map((e) => e.netns).sort(), ["ns1", "ns2", "ns3"]);
  }),
);

Deno.test(
  "a batch's reads look at the files once before it takes the lock, and again when it does",
  withTwoHandles((j, admin) => {
    j.batch(() => {
      assert.equal(j.isOverridden("ns1", RMEM), false);
      admin.markOverride({ netns: "ns1", sysctl: RMEM, tuner: "tcp_buffer", pid: 1, comm: "x" });
      assert.equal(j.isOverridden("ns1", RMEM), false, "as a read a moment earlier");
      j.recordOriginal("ns2", RMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
      assert.equal(j.isOverridden("ns1", RMEM), true, "caught up under the lock");
    });
    assert.equal(j.entry("ns1", RMEM), undefined);
    assert.equal(j.overrides().length, 1, "the override the other process wrote is kept");
  }),
);

Deno.test(
  "entries are found by key whatever removals moved them (the index is checked, then that place noted)",
  withDir((dir) => {
    const j = Journal.open(dir);
    const v = (k: number) => [k, k + 1, k + 2];
    for (let k = 0; k < 5; k++) j.recordOriginal(`ns${k}`, RMEM, "tcp_buffer", v(k), v(k + 10));
    j.recordWritten("ns3", RMEM, v(13));
    j.recordNotWritten("ns1", RMEM); // never written: the entry goes, the later ones move up
    j.recordOriginal("ns9", RMEM, "tcp_buffer", v(9), v(19));
    j.recordWritten("ns4", RMEM, v(14));
    j.forgetMany([{ netns: "ns0", sysctl: RMEM }]);
    j.recordWritten("ns9", RMEM, v(19));
    // Keys whose old places now hold other entries, added again at the end.
    j.recordOriginal("ns0", RMEM, "tcp_buffer", v(20), v(30));
    j.recordOriginal("ns1", RMEM, "tcp_buffer", v(21), v(31));
    j.recordWritten("ns1", RMEM, v(31));
    j.recordWritten("ns0", RMEM, v(30));
    const seen = (at: Journal) =>
      Object.fromEntries(at.changedEntries().map((e) => [e.netns, [e.original, e.lastWritten]]));
    const want = {
      ns0: [v(20), v(30)],
      ns1: [v(21), v(31)],
      ns2: [v(2), null],
      ns3: [v(3), v(13)],
      ns4: [v(4), v(14)],
      ns9: [v(9), v(19)],
    };
    assert.deepEqual(seen(j), want);
    assert.deepEqual(j.entry("ns1", RMEM)?.lastWritten, v(31));
    assert.deepEqual(j.entry("ns4", RMEM)?.lastWritten, v(14));
    j.close();
    assert.deepEqual(seen(Journal.open(dir)), want, "and so says the file");
  }),
);

Deno.test(
  "namespaces coming and going by the hundred: every change lands on its own entry",
  withDir((dir) => {
    const j = Journal.open(dir);
    const v = (k: number) => [k, k + 1, k + 2];
    for (let round = 0; round < 300; round++) {
      // Two live a while, then the older is pruned: places shift under the index every round.
      const ns = `ns${round}`;
      j.recordOriginal(ns, RMEM, "tcp_buffer", v(round), v(round + 1));
      j.recordWritten(ns, RMEM, v(round + 1));
      if (round >= 2) assert.equal(j.pruneNetns((n) => n === `ns${round - 2}`), 1);
      if (round >= 1) {
        j.recordOriginal(`ns${round - 1}`, RMEM, "tcp_buffer", v(0), v(round + 5));
        j.recordWritten(`ns${round - 1}`, RMEM, v(round + 5));
      }
    }
    const seen = (at: Journal) =>
      Object.fromEntries(at.changedEntries().map((e) => [e.netns, [e.original, e.lastWritten]]));
    const want = { ns298: [v(298), v(304)], ns299: [v(299), v(300)] };
    assert.deepEqual(seen(j), want);
    j.close();
    assert.deepEqual(seen(Journal.open(dir)), want, "and so says the file");
  }),
);

Deno.test(
  "overridesVersion moves with every change of the overrides, this process's or another's",
  withTwoHandles((j, cli, dir) => {
    const o = { netns: "ns1", sysctl: RMEM, tuner: "tcp_buffer", pid: 1, comm: "sysctl" };
    let v = j.overridesVersion();
    const moved = (why: string) => {
      const now = j.overridesVersion();
      assert.notEqual(now, v, why);
      v = now;
    };
    const still = (why: string) => assert.equal(j.overridesVersion(), v, why);
    still("nothing changed");
    j.recordOriginal("ns1", WMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    j.recordWritten("ns1", WMEM, [1, 2, 4]);
    still("an entry is not an override");
    j.markOverride(o);
    moved("markOverride");
    assert.equal(j.clearOverrides("net.core.rmem_max"), 0);
    still("a clear that matched nothing");
    cli.markOverride({ ...o, netns: "ns2" });
    moved("another process's override, read from the log");
    cli.recordOriginal("ns3", WMEM, "tcp_buffer", [1, 2, 3], [1, 2, 4]);
    still("another process's entry");
    assert.equal(cli.clearOverrides("tcp_buffer"), 2);
    moved("another process's `enable`");
    cli.markOverride(o);
    cli.close(); // folds the log into a new state.json: read from scratch
    assert.ok(!Deno.readTextFileSync(`${dir}/state.log`).includes("overrides"));
    moved("another process's override, folded into state.json");
    assert.equal(j.dropOverrides(() => true), 1);
    moved("dropOverrides");
    assert.equal(j.pruneNetns((netns) => netns === "ns3"), 1, "ns3's entry");
    still("a prune that dropped no override");
    j.markOverride(o);
    moved("markOverride");
    assert.equal(j.pruneNetns((netns) => netns === "ns1"), 2, "ns1's entry and override");
    moved("a prune that dropped an override");
  }),
);
