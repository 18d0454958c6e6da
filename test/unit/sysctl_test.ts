import assert from "node:assert/strict";
import {
  canonicalSysctlName,
  formatSysctlValues,
  INT_MAX,
  parseSysctlDump,
  parseSysctlValues,
  readSysctl,
  readSysctlText,
  SysctlError,
  sysctlPath,
  sysctlWLine,
  validateSysctlValues,
  writeSysctl,
  writeSysctlText,
} from "../../src/kernel/sysctl.ts";

/** A fake /proc/sys tree: path (slashed) → file content. */
function fakeProc(files: Record<string, string>): string {
  const root = Deno.makeTempDirSync({ prefix: "bpfp-sysctl-" });
  for (const [rel, content] of Object.entries(files)) {
    const path = `${root}/${rel}`;
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(path, content);
  }
  return root;
}

function sysctlError(fn: () => unknown): SysctlError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SysctlError, `expected SysctlError, got ${err}`);
    return err;
  }
  assert.fail("expected a SysctlError");
}

Deno.test("names: dotted and slashed forms map to one canonical dotted name", () => {
  assert.equal(canonicalSysctlName("net.ipv4.tcp_rmem"), "net.ipv4.tcp_rmem");
  assert.equal(canonicalSysctlName("net/ipv4/tcp_rmem"), "net.ipv4.tcp_rmem");
  assert.equal(canonicalSysctlName(" /proc/sys/net/core/rmem_max "), "net.core.rmem_max");
  assert.equal(sysctlPath("net.ipv4.tcp_rmem"), "/proc/sys/net/ipv4/tcp_rmem");
  assert.equal(sysctlPath("net/core/rmem_max", "/tmp/x/"), "/tmp/x/net/core/rmem_max");
});

Deno.test("names: an interface with a dot is expressed slashed or with '/' in the dotted form", () => {
  const slashed = "net/ipv4/conf/eth0.100/rp_filter";
  assert.equal(canonicalSysctlName(slashed), "net.ipv4.conf.eth0/100.rp_filter");
  assert.equal(sysctlPath(slashed), "/proc/sys/net/ipv4/conf/eth0.100/rp_filter");
  assert.equal(
    sysctlPath("net.ipv4.conf.eth0/100.rp_filter"),
    "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
  );
  // The all-dots spelling is read as interface "eth0" (procps does the same).
  assert.equal(
    sysctlPath("net.ipv4.conf.eth0.100.rp_filter"),
    "/proc/sys/net/ipv4/conf/eth0/100/rp_filter",
  );
});

Deno.test("names: traversal, empty components and spaces are refused", () => {
  for (const bad of ["", "  ", "net..ipv4", "net/../../etc/passwd", "net./.x", "a b", "a=b"]) {
    const err = sysctlError(() => sysctlPath(bad));
    assert.equal(err.kind, "invalid", bad);
    assert.match(err.message, /sysctl name/);
  }
});

Deno.test("parseSysctlValues: tabs, negatives, values past 2^31", () => {
  assert.deepEqual(parseSysctlValues("4096\t131072\t6291456\n", "net.ipv4.tcp_rmem", 3), [
    4096,
    131072,
    6291456,
  ]);
  assert.deepEqual(parseSysctlValues("-1\n", "x.y"), [-1]);
  assert.deepEqual(parseSysctlValues("4294967296 8589934592  17179869184", "net.ipv4.tcp_mem"), [
    4294967296,
    8589934592,
    17179869184,
  ]);
  assert.ok(Object.is(parseSysctlValues("-0", "x.y")[0], 0));
});

Deno.test("parseSysctlValues: wrong count, garbage and huge values are 'malformed'", () => {
  let err = sysctlError(() => parseSysctlValues("4096\t131072\n", "net.ipv4.tcp_rmem", 3));
  assert.equal(err.kind, "malformed");
  assert.equal(err.sysctl, "net.ipv4.tcp_rmem");
  assert.equal(err.message, 'net.ipv4.tcp_rmem: expected 3 integers, read "4096\\t131072"');
  err = sysctlError(() => parseSysctlValues("cubic", "net.ipv4.tcp_congestion_control"));
  assert.equal(err.kind, "malformed");
  assert.match(err.message, /expected integers, read "cubic"/);
  for (const text of ["", "  \n", "0x10", "1.5", "12abc"]) {
    assert.equal(sysctlError(() => parseSysctlValues(text, "a.b")).kind, "malformed", text);
  }
  err = sysctlError(() => parseSysctlValues("18446744073692774399", "kernel.shmmax"));
  assert.equal(err.kind, "malformed");
  assert.match(err.message, /kernel\.shmmax: value 18446744073692774399 is too large.*as text/);
});

Deno.test("formatSysctlValues and sysctlWLine", () => {
  assert.equal(formatSysctlValues([4096, 131072, 6291456]), "4096 131072 6291456");
  assert.equal(
    sysctlWLine("net/ipv4/tcp_rmem", [4096, 131072, 6291456]),
    'sysctl -w net.ipv4.tcp_rmem="4096 131072 6291456"',
  );
  assert.equal(sysctlWLine("net.core.rmem_max", [212992]), "sysctl -w net.core.rmem_max=212992");
  assert.equal(
    sysctlWLine("net.ipv4.conf.all.rp_filter", [-1]),
    "sysctl -w net.ipv4.conf.all.rp_filter=-1",
  );
  assert.equal(
    sysctlWLine("net.ipv4.tcp_congestion_control", "bbr"),
    "sysctl -w net.ipv4.tcp_congestion_control=bbr",
  );
  assert.equal(
    sysctlWLine("kernel.core_pattern", "|/bin/x $it's"),
    `sysctl -w kernel.core_pattern='|/bin/x $it'\\''s'`,
  );
  assert.equal(
    sysctlWLine("net/ipv4/conf/eth0.100/rp_filter", [1]),
    "sysctl -w net.ipv4.conf.eth0/100.rp_filter=1",
  );
});

Deno.test("validateSysctlValues: integers only, count and range", () => {
  const name = "net.ipv4.tcp_rmem";
  validateSysctlValues(name, [1, 2, INT_MAX], { count: 3, max: INT_MAX });
  const cases: [number[], object, RegExp][] = [
    [[], {}, /no values given/],
    [[NaN], {}, /NaN is not an integer/],
    [[1.5], {}, /1\.5 is not an integer/],
    [[Infinity], {}, /Infinity is not an integer/],
    [[1, 2], { count: 3 }, /expected 3 integers, got 2 \(1 2\)/],
    [[1, 2, INT_MAX + 1], { max: INT_MAX }, /2147483648 is above the maximum 2147483647/],
    [[-5], { min: 0 }, /-5 is below the minimum 0/],
  ];
  for (const [values, limits, message] of cases) {
    const err = sysctlError(() => validateSysctlValues(name, values, limits));
    assert.equal(err.kind, "invalid");
    assert.match(err.message, message);
    assert.match(err.message, /^net\.ipv4\.tcp_rmem: .*; not written$/);
  }
});

Deno.test("read/write against a fake /proc/sys", () => {
  const root = fakeProc({
    "net/ipv4/tcp_rmem": "4096\t131072\t6291456\n",
    "net/ipv4/tcp_congestion_control": "cubic\n",
  });
  try {
    assert.deepEqual(readSysctl("net.ipv4.tcp_rmem", { procRoot: root, count: 3 }), [
      4096,
      131072,
      6291456,
    ]);
    assert.equal(readSysctlText("net/ipv4/tcp_congestion_control", { procRoot: root }), "cubic");
    writeSysctl("net.ipv4.tcp_rmem", [4096, 131072, 7864320], { procRoot: root, count: 3 });
    assert.equal(Deno.readTextFileSync(`${root}/net/ipv4/tcp_rmem`), "4096 131072 7864320\n");
    writeSysctlText("net.ipv4.tcp_congestion_control", "bbr", { procRoot: root });
    assert.equal(Deno.readTextFileSync(`${root}/net/ipv4/tcp_congestion_control`), "bbr\n");
    const err = sysctlError(() =>
      readSysctl("net.ipv4.tcp_congestion_control", { procRoot: root })
    );
    assert.equal(err.kind, "malformed");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("verify: a write the file did not keep is an error, one it kept is not", () => {
  const root = fakeProc({ "net/ipv4/tcp_rmem": "4096\t131072\t6291456\n" });
  try {
    // Like a sysctl whose write the kernel takes and drops: /dev/null reads back nothing.
    Deno.symlinkSync("/dev/null", `${root}/net/ipv4/tcp_wmem`);
    const opts = { procRoot: root, verify: true };
    writeSysctl("net.ipv4.tcp_wmem", [4096, 16384, 5242880], { procRoot: root }); // unverified
    const err = sysctlError(() => writeSysctl("net.ipv4.tcp_wmem", [4096, 16384, 5242880], opts));
    assert.equal(err.kind, "io");
    assert.match(
      err.message,
      /wrote \(4096 16384 5242880\) to net\.ipv4\.tcp_wmem but it reads back ""/,
    );
    writeSysctl("net.ipv4.tcp_rmem", [4096, 131072, 7864320], opts);
    assert.equal(Deno.readTextFileSync(`${root}/net/ipv4/tcp_rmem`), "4096 131072 7864320\n");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("invalid writes never touch the file", () => {
  const root = fakeProc({ "net/ipv4/tcp_rmem": "4096\t131072\t6291456\n" });
  const path = `${root}/net/ipv4/tcp_rmem`;
  try {
    const bad: [number[], object][] = [
      [[4096, 131072], { count: 3 }],
      [[4096, 131072, NaN], {}],
      [[4096, 131072, INT_MAX + 1], { max: INT_MAX }],
    ];
    for (const [values, limits] of bad) {
      const err = sysctlError(() =>
        writeSysctl("net.ipv4.tcp_rmem", values, { procRoot: root, ...limits })
      );
      assert.equal(err.kind, "invalid");
      assert.equal(Deno.readTextFileSync(path), "4096\t131072\t6291456\n");
    }
    const err = sysctlError(() => writeSysctlText("net.ipv4.tcp_rmem", "1\n2", { procRoot: root }));
    assert.equal(err.kind, "invalid");
    assert.match(err.message, /single line/);
    assert.equal(Deno.readTextFileSync(path), "4096\t131072\t6291456\n");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("missing sysctls and directories give clear errors; writes never create files", () => {
  const root = fakeProc({ "net/ipv4/tcp_rmem": "1 2 3\n" });
  try {
    let err = sysctlError(() => readSysctl("net.ipv4.foo", { procRoot: root }));
    assert.equal(err.kind, "missing");
    assert.equal(err.sysctl, "net.ipv4.foo");
    assert.match(
      err.message,
      /^this kernel has no sysctl net\.ipv4\.foo \(not built in, or a module is not loaded\)/,
    );
    err = sysctlError(() => writeSysctl("net/ipv4/foo", [1], { procRoot: root }));
    assert.equal(err.kind, "missing");
    assert.equal(err.sysctl, "net.ipv4.foo");
    assert.throws(() => Deno.statSync(`${root}/net/ipv4/foo`), Deno.errors.NotFound);
    err = sysctlError(() => readSysctl("net.ipv4.conf.eth0.100.rp_filter", { procRoot: root }));
    assert.equal(err.kind, "missing");
    assert.match(err.message, /write it slashed, e\.g\. net\/ipv4\/conf\/eth0\.100\/rp_filter/);
    err = sysctlError(() => readSysctl("net.ipv4", { procRoot: root }));
    assert.equal(err.kind, "invalid");
    assert.match(err.message, /net\.ipv4 is a group of sysctls/);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("parseSysctlDump: values with tabs, '=' and nothing; garbage reported by line", () => {
  const text = [
    "kernel.core_pattern = |/usr/lib/systemd/systemd-coredump %P %u a=b",
    "net.ipv4.tcp_rmem = 4096\t131072\t6291456",
    "",
    "sysctl: permission denied on key 'fs.protected_regular'",
    "net.ipv4.conf.eth0/100.rp_filter = 1",
    "kernel.domainname = ",
    "net.core.rmem_max=212992\r",
    "# comment",
    "bad key = 3",
    "net.core.rmem_max = 425984",
    "   ",
    "kernel.core_modes = file",
    "kernel.core_modes = pipe",
    "kernel.core_modes = socket",
  ].join("\n");
  const dump = parseSysctlDump(text);
  assert.ok(dump instanceof Map);
  assert.equal(dump.get("kernel.core_pattern"), "|/usr/lib/systemd/systemd-coredump %P %u a=b");
  assert.equal(dump.get("net.ipv4.tcp_rmem"), "4096\t131072\t6291456");
  assert.deepEqual(parseSysctlValues(dump.get("net.ipv4.tcp_rmem")!, "net.ipv4.tcp_rmem", 3), [
    4096,
    131072,
    6291456,
  ]);
  assert.equal(dump.get("net.ipv4.conf.eth0/100.rp_filter"), "1");
  assert.equal(dump.get("kernel.domainname"), "");
  assert.equal(dump.get("net.core.rmem_max"), "425984");
  assert.equal(dump.get("kernel.core_modes"), "file\npipe\nsocket", "multi-line value");
  assert.equal(dump.size, 6);
  assert.deepEqual(
    dump.problems.map((p) => [p.line, p.reason]),
    [
      [4, 'not a "name = value" line'],
      [9, '"bad key" is not a sysctl name'],
      [10, "net.core.rmem_max already appeared on line 7; the later value is kept"],
    ],
  );
  assert.equal(dump.problems[0].text, "sysctl: permission denied on key 'fs.protected_regular'");
});

Deno.test("parseSysctlDump: empty and binary input do not throw", () => {
  assert.equal(parseSysctlDump("").size, 0);
  const dump = parseSysctlDump("\u0000\u0001garbage\n=\n= x\n");
  assert.equal(dump.size, 0);
  assert.deepEqual(dump.problems.map((p) => p.line), [1, 2, 3]);
});
