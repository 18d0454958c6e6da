/**
 * `bpfpilot support` as a user meets it, through the launcher and the bundle: the honest level
 * on this kernel, the JSON schema, every hook's chosen kind or reasons; and the clear failures
 * (libbpf out of reach, not root) with exit 1 and no stack trace.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { IS_ROOT } from "../support/kernel.ts";

const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
const LAUNCHER = join(ROOT, "scripts/bpfpilot");
const DENO = join(ROOT, "node_modules/.bin/deno");

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(LAUNCHER, args, { encoding: "utf8", env: { ...Deno.env.toObject(), ...env } });
}

Deno.test({
  name: "support --json: schema, honest level, tracepoint kinds work, fentry/kprobe say why not",
  ignore: !IS_ROOT,
  fn() {
    const r = run(["support", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.ok(["full", "legacy"].includes(j.level));
    assert.equal(typeof j.netnsCookie, "boolean");
    assert.match(j.libbpf.path, /libbpf\.so/);
    assert.match(j.libbpf.version, /^\d+\.\d+$/);
    assert.equal(j.kernel.release, Deno.osRelease());
    assert.equal(j.kernel.btf, true);
    const hooks = j.hooks as {
      tuner: string;
      hook: string;
      chosen: string | null;
      tried: { kind: string; ok: boolean; reason: string }[];
    }[];
    for (const want of ["tcp_buffer/rcvbuf", "tcp_buffer/sndbuf", "tcp_buffer/mem_pressure"]) {
      assert.ok(hooks.some((h) => `${h.tuner}/${h.hook}` === want), `${want} declared`);
    }
    const sysctl = hooks.find((h) => h.tuner === "sysctl")!;
    assert.equal(sysctl.chosen, "cgroup");
    const rcv = hooks.find((h) => h.hook === "rcvbuf")!;
    assert.equal(rcv.chosen, "tp_btf");
    const byKind = Object.fromEntries(rcv.tried.map((t) => [t.kind, t]));
    assert.equal(byKind.tracepoint.ok, true);
    // This machine's kernel: fentry refused, kprobes not built in; each with its reason.
    assert.equal(byKind.fentry.ok, false);
    assert.match(byKind.fentry.reason, /refused|EPERM/);
    assert.equal(byKind.kprobe.ok, false);
    assert.match(byKind.kprobe.reason, /kprobes are not built/);
    const kinds = Object.fromEntries(
      (j.kinds as { kind: string; ok: boolean }[]).map((k) => [k.kind, k.ok]),
    );
    assert.deepEqual(
      [
        kinds.tp_btf,
        kinds.raw_tp,
        kinds.tracepoint,
        kinds["cgroup/sockops"],
        kinds["cgroup/sysctl"],
      ],
      [true, true, true, true, true],
    );
    assert.equal(j.level, "full", "every first preference (tp_btf, cgroup) works here");
  },
});

Deno.test({
  name: "support (text): the two headline lines come first, then the matrix",
  ignore: !IS_ROOT,
  fn() {
    const r = run(["support"]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split("\n");
    assert.match(lines[0], /^bpfpilot (works fully|works in legacy mode)$/);
    assert.match(
      lines[1],
      /^bpfpilot (does not )?supports? per-netns policy \(via netns cookie\)$/,
    );
    // tcp_rcvbuf_grow (6.17+) is preferred; tcp_rcv_space_adjust on older kernels.
    assert.match(r.stdout, /tcp_buffer\/rcvbuf: tp_btf tcp_rcv(buf_grow|_space_adjust)/);
    assert.match(r.stdout, /- kprobe tcp_rcv_space_adjust\s+kprobes are not built/);
  },
});

Deno.test("libbpf out of reach (BPFPILOT_LIBBPF_DIR): clear message, paths tried, exit 1", () => {
  const empty = mkdtempSync(join(tmpdir(), "bpfp-nolib-"));
  try {
    const r = run(["support"], { BPFPILOT_LIBBPF_DIR: empty });
    if (!IS_ROOT) return; // without root the root check answers first
    assert.equal(r.status, 1);
    assert.match(r.stderr, /libbpf was not found/);
    assert.match(r.stderr, /apt install libbpf1/);
    assert.ok(r.stderr.includes(`${empty}/libbpf.so.1: not present`));
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

Deno.test({
  name: "not root: a clear message and exit 1",
  ignore: !IS_ROOT, // needs root to switch to an unprivileged user
  fn() {
    const denoDir = mkdtempSync(join(tmpdir(), "bpfp-denodir-"));
    chmodSync(denoDir, 0o777);
    try {
      const r = spawnSync("setpriv", [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        DENO,
        "run",
        "-A",
        "--no-config",
        join(ROOT, "dist/bpfpilot.js"),
        "support",
      ], { encoding: "utf8", env: { ...Deno.env.toObject(), DENO_DIR: denoDir } });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /^bpfpilot: bpfpilot support needs root/);
      assert.doesNotMatch(r.stderr, /^\s+at /m);
    } finally {
      rmSync(denoDir, { recursive: true, force: true });
    }
  },
});

Deno.test("--help teaches and --version prints the version; a bad command is a usage error", () => {
  const h = run(["--help"]);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /Exit status/);
  assert.match(h.stdout, /support/);
  const v = run(["--version"]);
  assert.match(v.stdout.trim(), /^\d+\.\d+\.\d+$/);
  const bad = run(["no-such-command"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown command/);
});

Deno.test({
  name: "libbpf older than 1.0 is refused by name and version, before any other symbol is bound",
  ignore: !IS_ROOT,
  fn() {
    const dir = mkdtempSync(join(tmpdir(), "bpfp-oldlib-"));
    try {
      // A stand-in library that reports itself as libbpf 0.8, and one too old to report at all.
      const src = join(dir, "v.c");
      Deno.writeTextFileSync(
        src,
        "unsigned int libbpf_major_version(void) { return 0; }\n" +
          "unsigned int libbpf_minor_version(void) { return 8; }\n",
      );
      spawnSync("clang-16", ["-shared", "-fPIC", "-o", join(dir, "libbpf.so.1"), src]);
      const r = run(["support"], { BPFPILOT_LIBBPF_DIR: dir });
      assert.equal(r.status, 1);
      assert.match(
        r.stderr,
        new RegExp(
          `libbpf at ${dir}/libbpf\\.so\\.1 is version 0\\.8; bpfpilot needs libbpf 1\\.0 or newer`,
        ),
      );
      assert.match(r.stderr, /apt install libbpf1/);
      assert.doesNotMatch(r.stderr, /^\s+at /m);

      Deno.writeTextFileSync(src, "int unrelated(void) { return 0; }\n");
      spawnSync("clang-16", ["-shared", "-fPIC", "-o", join(dir, "libbpf.so.1"), src]);
      const r2 = run(["support"], { BPFPILOT_LIBBPF_DIR: dir });
      assert.equal(r2.status, 1);
      assert.match(r2.stderr, /is version older than 0\.6/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
