/**
 * What root's `audit` reads and writes cannot be turned against it: a symlink spray in a
 * world-writable textfile directory and a device node as --prometheus are refused and touch
 * nothing; /dev/zero, a FIFO, a huge file, random bytes and a non-sysctl file as --from are clear
 * errors within a second (the built bundle, as installed), never a hang or a "Findings: none".
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { IS_ROOT } from "../support/kernel.ts";
import { ROOT } from "../support/daemon.ts";

const DENO = join(ROOT, "node_modules/.bin/deno");
const BUNDLE = join(ROOT, "dist/bpfpilot.js");

function audit(args: string[]) {
  const t0 = performance.now();
  const r = spawnSync(DENO, ["run", "-A", BUNDLE, "audit", ...args], {
    encoding: "utf8",
    timeout: 10_000,
  });
  return { ...r, ms: performance.now() - t0 };
}

function withDir(fn: (dir: string) => void) {
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-hf-" });
  try {
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function dump(dir: string): string {
  const out = new Deno.Command("sysctl", { args: ["-a"], stdout: "piped", stderr: "null" })
    .outputSync();
  Deno.writeFileSync(`${dir}/dump`, out.stdout);
  return `${dir}/dump`;
}

Deno.test({
  name:
    "audit --prometheus: a symlink spray by nobody and device nodes are refused, nothing touched",
  ignore: !IS_ROOT,
  fn() {
    withDir((dir) => {
      const from = dump(dir);
      const spool = `${dir}/textfile`;
      Deno.chmodSync(dir, 0o711); // nobody may pass through to the spool
      Deno.mkdirSync(spool);
      Deno.chmodSync(spool, 0o1777);
      Deno.writeTextFileSync(`${dir}/root-only`, "precious\n");
      Deno.chmodSync(`${dir}/root-only`, 0o600);
      // nobody plants links at every name the old code could have used, and at the target.
      const spray = spawnSync("setpriv", [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "sh",
        "-c",
        `i=1; while [ $i -le 300 ]; do ln -s ${dir}/root-only ${spool}/bpfpilot.prom.$i; ` +
        `i=$((i+1)); done; ln -s ${dir}/root-only ${spool}/bpfpilot.prom`,
      ]);
      assert.equal(spray.status, 0);
      const r = audit(["--from", from, "--exit-zero", "--prometheus", `${spool}/bpfpilot.prom`]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /cannot write --prometheus .*: it is a symbolic link/);
      assert.equal(Deno.readTextFileSync(`${dir}/root-only`), "precious\n");
      // Once the link is gone, the write happens, beside the sprayed links, not through them.
      Deno.removeSync(`${spool}/bpfpilot.prom`);
      const ok = audit(["--from", from, "--exit-zero", "--prometheus", `${spool}/bpfpilot.prom`]);
      assert.equal(ok.status, 0, ok.stderr);
      assert.ok(Deno.lstatSync(`${spool}/bpfpilot.prom`).isFile);
      assert.equal(Deno.readTextFileSync(`${dir}/root-only`), "precious\n");

      for (const dev of ["/dev/full", "/dev/null"]) {
        const d = audit(["--from", from, "--exit-zero", "--prometheus", dev]);
        assert.equal(d.status, 2);
        assert.match(d.stderr, /it is a device; bpfpilot only replaces regular files/);
        assert.ok(Deno.statSync(dev).isCharDevice, `${dev} is still a device`);
      }
    });
  },
});

Deno.test({
  name: "audit --from /dev/zero, a FIFO, huge, random or non-sysctl input: errors within 1 s",
  ignore: !IS_ROOT,
  fn() {
    withDir((dir) => {
      spawnSync("mkfifo", [`${dir}/fifo`]);
      Deno.writeFileSync(`${dir}/big`, new Uint8Array(17 * 1024 * 1024).fill(0x61));
      Deno.writeFileSync(`${dir}/random`, crypto.getRandomValues(new Uint8Array(65536)));
      Deno.writeTextFileSync(`${dir}/lines`, "x\n".repeat(130_000) + "net.core.somaxconn = 1\n");
      const cases: [string, RegExp][] = [
        ["/dev/zero", /is a device, not a regular file/],
        [`${dir}/fifo`, /is a FIFO, not a regular file/],
        [`${dir}/big`, /is larger than \d+ bytes/],
        [`${dir}/random`, /binary file|not `sysctl -a` output/],
        ["/etc/os-release", /not `sysctl -a` output: 0 of its lines name a sysctl/],
        [`${dir}/lines`, /not `sysctl -a` output/],
      ];
      for (const [from, re] of cases) {
        const r = audit(["--from", from]);
        assert.equal(r.status, 2, `${from}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, re, from);
        assert.doesNotMatch(r.stderr, /Maximum call stack|^\s+at /m);
        assert.ok(r.ms < 1000 + 1500, `${from}: ${r.ms} ms (Deno's start included)`);
      }
    });
  },
});
