/**
 * Trust in what is on disk: a state directory another account controls is refused; a forged
 * journal cannot make root's rollback write a sysctl bpfpilot does not manage; a state file that
 * is a FIFO or a link to /dev/zero is a clear error within a second, not a hang; a mistyped
 * --state-dir is not created.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { IS_ROOT } from "../support/kernel.ts";
import { LAUNCHER } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
import { Journal } from "../../src/daemon/journal.ts";

function cli(args: string[], timeout = 10_000) {
  const t0 = performance.now();
  const r = spawnSync(LAUNCHER, args, { encoding: "utf8", timeout });
  return { ...r, ms: performance.now() - t0 };
}

Deno.test({
  name: "a forged journal cannot make rollback write a sysctl bpfpilot does not manage",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("forge", ({ ns, state }) => {
      const inum = Deno.statSync(`/run/netns/${ns.name}`).ino;
      // The forged "original" is the opposite of the live value, which we "last wrote".
      const [now] = ns.sysctl("net.ipv4.ip_forward");
      const j = Journal.open(state);
      j.recordOriginal(`ns:${inum}`, "net.ipv4.ip_forward", "tcp_buffer", [1 - now], [now]);
      j.recordWritten(`ns:${inum}`, "net.ipv4.ip_forward", [now]);
      j.close();
      const dry = cli(["rollback", "--dry-run", "--state-dir", state]);
      assert.doesNotMatch(dry.stdout, /^sysctl -w net\.ipv4\.ip_forward/m, dry.stdout);
      const r = cli(["rollback", "--state-dir", state]);
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /refused to roll back 'net\.ipv4\.ip_forward'.*no bpfpilot tuner/);
      assert.deepEqual(ns.sysctl("net.ipv4.ip_forward"), [now], "not written");
    }),
});

Deno.test({
  name: "a state directory another user owns or can write is refused by run and rollback",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("owner", ({ state }) => {
      chownSync(state, 65534, 65534);
      chmodSync(state, 0o777);
      for (const args of [["rollback"], ["enable", "tcp_buffer"], ["run", "--stderr"]]) {
        const r = cli([...args, "--state-dir", state]);
        assert.equal(r.status, 1, `${args[0]}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /refusing state directory .* owned by uid 65534/, r.stderr);
        assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
      }
      assert.deepEqual([...Deno.readDirSync(state)], [], "nothing written there");
    }),
});

Deno.test({
  name: "state.json as a FIFO or a link to /dev/zero: a clear error within a second",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("statef", (sb) => {
      for (const kind of ["fifo", "zero"]) {
        const state = sb.stateDir();
        const file = `${state}/state.json`;
        if (kind === "fifo") spawnSync("mkfifo", [file]);
        else symlinkSync("/dev/zero", file);
        const r = cli(["rollback", "--state-dir", state], 5000);
        assert.equal(r.status, 1, `${kind}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /state\.json is not a regular file/);
        assert.ok(r.ms < 1000 + 1500, `${kind}: answered in ${r.ms} ms`); // + Deno's start
      }
    }),
});

Deno.test({
  name: "rollback --state-dir with a typo or a file: clear error, nothing created",
  ignore: !IS_ROOT,
  fn: () =>
    withSandbox("typo", ({ state }) => {
      const typo = `${state}/tpyo`;
      const r = cli(["rollback", "--state-dir", typo]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /state directory .*tpyo does not exist/);
      assert.throws(() => Deno.statSync(typo), "not created");
      mkdirSync(`${state}/d`);
      writeFileSync(`${state}/d/f`, "");
      const f = cli(["run", "--stderr", "--state-dir", `${state}/d/f`]);
      assert.equal(f.status, 1);
      assert.match(f.stderr, /state directory .*\/d\/f is a file, not a directory/);
    }),
});
