import assert from "node:assert/strict";
import { AuditError } from "../../src/audit/errors.ts";
import { liveSysctls, loadSysctlDump, readSysctlDumpFile } from "../../src/audit/sysctl_source.ts";

/** A `sysctl -a` dump of this machine, or a written stand-in where sysctl(8) is absent. */
function captureDump(): string {
  try {
    const out = new Deno.Command("sysctl", { args: ["-a"], stdout: "piped", stderr: "null" })
      .outputSync();
    if (out.success || out.stdout.length > 0) return new TextDecoder().decode(out.stdout);
  } catch {
    // sysctl(8) not installed
  }
  return "kernel.hostname = box\nkernel.osrelease = 6.1.0\nnet.ipv4.tcp_rmem = 4096\t131072\t6291456\n";
}

Deno.test("dump: a real `sysctl -a` capture loads, tabs normalised, no warnings", () => {
  const text = captureDump();
  const { source, skipped } = loadSysctlDump(text, "dump");
  assert.equal(source.origin, "file");
  assert.deepEqual(skipped, []);
  const rmem = source.get("net.ipv4.tcp_rmem");
  assert.equal(rmem.kind, "value");
  if (rmem.kind === "value") assert.match(rmem.value, /^\d+ \d+ \d+$/);
  assert.equal(source.get("kernel.osrelease").kind, "value");
  assert.deepEqual(source.get("net.no.such.sysctl"), { kind: "missing" });
});

Deno.test("dump: sysctl.conf style and slashed names are accepted", () => {
  const { source } = loadSysctlDump(
    "# comment\n; other\nnet/core/somaxconn=128\n\nnet.core.rmem_max = 1\n",
    "f",
  );
  assert.deepEqual(source.get("net.core.somaxconn"), { kind: "value", value: "128" });
  assert.deepEqual(source.get("net.core.rmem_max"), { kind: "value", value: "1" });
});

Deno.test("dump: a multi-line value (kernel.core_modes) is not a warning; a real duplicate is", () => {
  const text = "kernel.core_modes = file\nkernel.core_modes = pipe\nnet.core.somaxconn = 1\n" +
    "sysctl: permission denied on key 'x.y'\nnet.core.somaxconn = 2\n";
  const { source, skipped } = loadSysctlDump(text, "d");
  assert.equal(skipped.length, 2);
  assert.match(skipped[0], /^d:4: /);
  assert.match(skipped[1], /^d:5: .*already appeared/);
  assert.deepEqual(source.get("net.core.somaxconn"), { kind: "value", value: "2" });
});

Deno.test("dump: empty, garbage and binary files are clear errors", () => {
  assert.throws(
    () => loadSysctlDump("", "a"),
    (e) => e instanceof AuditError && /sysctl -a > FILE/.test(e.message),
  );
  assert.throws(() => loadSysctlDump("hello world\nfoo bar\n", "b"), /no "name = value" lines/);
  assert.throws(() => loadSysctlDump("net.a = 1\u0000\u0001", "c"), /binary file/);
});

Deno.test("dump file: missing path and directory give cause and fix", () => {
  assert.throws(
    () => readSysctlDumpFile("/nonexistent/dump"),
    /--from \/nonexistent\/dump does not exist; pass a file made with/,
  );
  const dir = Deno.makeTempDirSync();
  try {
    assert.throws(
      () => readSysctlDumpFile(dir),
      (e) => e instanceof AuditError && /is a directory|cannot be read/.test(e.message),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("live: reads a fake /proc/sys tree; missing stays missing", () => {
  const root = Deno.makeTempDirSync({ prefix: "bpfpilot-audit-sys-" });
  try {
    Deno.mkdirSync(`${root}/net/ipv4`, { recursive: true });
    Deno.writeTextFileSync(`${root}/net/ipv4/tcp_rmem`, "4096\t131072\t6291456\n");
    const src = liveSysctls(root);
    assert.equal(src.origin, "live");
    assert.deepEqual(src.get("net.ipv4.tcp_rmem"), { kind: "value", value: "4096 131072 6291456" });
    assert.deepEqual(src.get("net.ipv4.tcp_wmem"), { kind: "missing" });
    assert.deepEqual(src.get("net.ipv6.conf.all.disable_ipv6"), { kind: "missing" });
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
