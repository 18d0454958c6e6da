/**
 * Power loss, simulated over the real journal code (journal.ts, journal_fold.ts, journal_log.ts on
 * real files): the file layer's durability calls are watched (fsync and fdatasync of a file, sync
 * or async, and of the directory), and after each one completes (a cut point: a power loss can only
 * keep more than at the last one, never less) the files a power loss would leave at worst are
 * rebuilt in a fresh directory: each name the directory had at its last fsync, holding what its
 * file had at its own last fsync (at the call: writes made while an async fsync runs are not
 * counted), or nothing. The journal is opened there and must read every change acknowledged by
 * then: a decision once its call returned, a daemon's change once a log sync that began after it
 * completed, everything once the journal closed. Removed and replaced files are kept alive under
 * another name outside the directory while the test runs, so that no inode number is reused (the
 * model keys files by inode).
 */
import assert from "node:assert/strict";
import { Journal } from "../../src/daemon/journal.ts";
import { inTempDir } from "../support/temp_dir.ts";

const RMEM = "net.ipv4.tcp_rmem";

/** What a power loss leaves: the directory's durable names, and each inode's durable bytes. */
class PowerLossModel {
  /** name -> inode, as of the directory's last fsync. */
  names = new Map<string, number>();
  /** inode -> its bytes as of its last fsync. */
  bytes = new Map<number, Uint8Array>();
  #grave: string;
  #kept = 0;
  #restore: (() => void)[] = [];
  cuts = 0;

  constructor(readonly dir: string, private readonly onCut: () => void) {
    this.#grave = Deno.makeTempDirSync({ prefix: "bpfp-powerloss-grave-" });
    this.#snapshotDir(); // the start: everything there is on disk
    for (const ino of this.names.values()) this.bytes.set(ino, this.#read(ino) ?? new Uint8Array());
    this.#hook();
  }

  /** The current directory: name -> inode (lock files included; only our directory). */
  #list(): Map<string, number> {
    const out = new Map<string, number>();
    for (const e of Deno.readDirSync(this.dir)) {
      if (e.isFile) out.set(e.name, Deno.lstatSync(`${this.dir}/${e.name}`).ino ?? 0);
    }
    return out;
  }

  #snapshotDir(): void {
    this.names = this.#list();
  }

  /** The current bytes of inode `ino` if a name in the directory leads to it. */
  #read(ino: number): Uint8Array | null {
    for (const [name, i] of this.#list()) {
      if (i === ino) return Deno.readFileSync(`${this.dir}/${name}`);
    }
    return null;
  }

  /** What an fsync of `f` makes durable, taken at its call; null when not of our directory. */
  #capture(f: Deno.FsFile): (() => void) | null {
    const st = f.statSync();
    if (st.isDirectory) {
      if (st.ino !== Deno.statSync(this.dir).ino) return null;
      const names = this.#list();
      return () => this.names = names;
    }
    const ino = st.ino ?? 0;
    const bytes = this.#read(ino);
    if (bytes === null) return null; // a file of another directory, or one unlinked already
    return () => this.bytes.set(ino, bytes);
  }

  #cut(commit: (() => void) | null): void {
    if (commit === null) return;
    commit();
    this.cuts++;
    this.onCut();
  }

  /** Keeps the file at `path` (of our directory) alive under another name: no inode reuse. */
  #keep(path: string): void {
    if (!path.startsWith(`${this.dir}/`)) return;
    try {
      Deno.linkSync(path, `${this.#grave}/${this.#kept++}`);
    } catch { /* not there */ }
  }

  #hook(): void {
    const proto = Deno.FsFile.prototype;
    const capture = (f: Deno.FsFile) => this.#capture(f);
    const cut = (commit: (() => void) | null) => this.#cut(commit);
    for (const name of ["syncSync", "syncDataSync"] as const) {
      const orig = proto[name];
      proto[name] = function (this: Deno.FsFile) {
        const commit = capture(this);
        orig.call(this);
        cut(commit);
      };
      this.#restore.push(() => proto[name] = orig);
    }
    for (const name of ["sync", "syncData"] as const) {
      const orig = proto[name];
      proto[name] = async function (this: Deno.FsFile) {
        const commit = capture(this);
        await orig.call(this);
        cut(commit);
      };
      this.#restore.push(() => proto[name] = orig);
    }
    const { renameSync, removeSync, remove } = Deno;
    Deno.renameSync = (from, to) => {
      this.#keep(String(to));
      renameSync(from, to);
    };
    Deno.removeSync = (path, opts) => {
      this.#keep(String(path));
      removeSync(path, opts);
    };
    Deno.remove = (path, opts) => {
      this.#keep(String(path));
      return remove(path, opts);
    };
    this.#restore.push(() => Object.assign(Deno, { renameSync, removeSync, remove }));
  }

  /** The files a power loss now leaves, in a new directory (removed by the caller). */
  image(): string {
    const out = Deno.makeTempDirSync({ prefix: "bpfp-powerloss-image-" });
    for (const [name, ino] of this.names) {
      Deno.writeFileSync(`${out}/${name}`, this.bytes.get(ino) ?? new Uint8Array(), {
        mode: 0o600,
      });
    }
    return out;
  }

  dispose(): void {
    for (const r of this.#restore.reverse()) r();
    Deno.removeSync(this.#grave, { recursive: true });
  }
}

/** What must survive: each namespace's acknowledged value, and the acknowledged overrides. */
class Acknowledged {
  /** ns -> the last value given (acknowledged or not), and the last acknowledged. */
  given = new Map<string, number>();
  acked = new Map<string, number>();
  overrides = new Set<string>();

  /** A log sync began: the changes given so far are acknowledged once it completes. */
  syncBegins(): () => void {
    const upTo = new Map(this.given);
    return () => {
      for (const [ns, v] of upTo) this.acked.set(ns, Math.max(this.acked.get(ns) ?? 0, v));
    };
  }

  /** Opens the files a power loss leaves now and checks every acknowledged change is read. */
  check(model: PowerLossModel, where: string): void {
    const image = model.image();
    try {
      const j = Journal.open(image, { bootId: () => "boot", warn: () => {} });
      try {
        const read = new Map(
          j.changedEntries().map((e) => {
            const values = [e.lastWritten, e.pending].filter((v) => v !== null) as number[][];
            return [e.netns, Math.max(...values.map((v) => v[2]))] as const;
          }),
        );
        for (const [ns, v] of this.acked) {
          const got = read.get(ns) ?? 0;
          assert.ok(got >= v, `${where}: ${ns} reads ${got}, acknowledged ${v}`);
        }
        const overrides = new Set(j.overrides().map((o) => o.netns));
        for (const ns of this.overrides) assert.ok(overrides.has(ns), `${where}: override ${ns}`);
      } finally {
        j.close();
      }
    } finally {
      Deno.removeSync(image, { recursive: true });
    }
  }
}

let value = 7_000_000;

/** One change as the daemon's applier makes it (a batch: announce, append, recordWritten). */
function daemonChange(j: Journal, acks: Acknowledged, ns: string): void {
  const v = value++;
  acks.given.set(ns, v);
  j.batch(() => {
    j.announce(ns, RMEM, "tcp_buffer", [4096, 131072, v - 1], [4096, 131072, v]);
    j.appendAnnounced();
    j.recordWritten(ns, RMEM, [4096, 131072, v]);
  });
}

const turn = () => new Promise((r) => setTimeout(r, 0));

Deno.test(
  "power loss at every fsync of a daemon's journal (changes, decisions, the tick's syncs, background folds, its close) loses nothing acknowledged",
  inTempDir("bpfp-powerloss-", async (dir) => {
    const acks = new Acknowledged();
    let failure: unknown = null;
    let where = "start";
    let checking = false;
    const model = new PowerLossModel(dir, () => {
      if (checking || failure) return;
      checking = true;
      try {
        acks.check(model, `at cut ${model.cuts} (${where})`);
      } catch (e) {
        failure = e;
      } finally {
        checking = false;
      }
    });
    try {
      const j = Journal.open(dir, { foldInBackground: true, bootId: () => "boot" });
      j.claimDaemon();
      for (let round = 0; round < 12; round++) {
        where = `round ${round}: changes`;
        for (let i = 0; i < 60; i++) {
          daemonChange(j, acks, `ns${(round * 7 + i) % 40}`);
          if (i % 10 === 0) await turn(); // a background fold's steps run here
        }
        where = `round ${round}: a decision`;
        const ns = `ns${round % 40}`;
        j.markOverride({ netns: ns, sysctl: RMEM, tuner: "tcp_buffer", pid: 1, comm: "sh" });
        acks.overrides.add(ns);
        // The decision's fdatasync covered every append before it.
        for (const [n, v] of acks.given) acks.acked.set(n, v);
        acks.check(model, `after round ${round}'s decision`);
        where = `round ${round}: the tick's sync`;
        const acked = acks.syncBegins();
        const sync = j.syncLogInBackground();
        daemonChange(j, acks, `ns${round % 40}`); // while it runs: not acknowledged by it
        await sync;
        acked();
        acks.check(model, `after round ${round}'s sync`);
        await turn();
      }
      where = "close";
      const acked = acks.syncBegins();
      await j.closeInBackground();
      acked();
      acks.check(model, "after the close");
      if (failure) throw failure;
      assert.ok(j.folds >= 3, `${j.folds} background folds`);
      assert.ok(model.cuts > 30, `${model.cuts} cut points`);
    } finally {
      model.dispose();
    }
  }),
);

Deno.test(
  "power loss at every fsync of the CLI's journal (durable records, folds at once, close) loses nothing acknowledged",
  inTempDir("bpfp-powerloss-", (dir) => {
    const acks = new Acknowledged();
    let failure: unknown = null;
    let checking = false;
    const model = new PowerLossModel(dir, () => {
      if (checking || failure) return;
      checking = true;
      try {
        acks.check(model, `at cut ${model.cuts}`);
      } catch (e) {
        failure = e;
      } finally {
        checking = false;
      }
    });
    try {
      for (let run = 0; run < 3; run++) {
        const j = Journal.open(dir, { bootId: () => "boot" });
        for (let i = 0; i < 150; i++) {
          const ns = `ns${i % 30}`, v = value++;
          acks.given.set(ns, v);
          j.recordOriginal(ns, RMEM, "tcp_buffer", [4096, 131072, v - 1], [4096, 131072, v]);
          acks.acked.set(ns, v); // durable once it returned
          j.recordWritten(ns, RMEM, [4096, 131072, v]);
        }
        const acked = acks.syncBegins();
        j.close();
        acked();
        acks.check(model, `after close ${run}`);
      }
      if (failure) throw failure;
    } finally {
      model.dispose();
    }
  }),
);
