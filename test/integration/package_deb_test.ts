/**
 * The Debian package, end to end on this machine: built by scripts/package/deb, lintian clean,
 * installed with dpkg (the daemon unit installed but not enabled, the audit timer enabled), the
 * installed program runs `support --json`, an upgrade keeps an edited conffile, and a purge
 * leaves no file behind (a before/after listing of every path that names bpfpilot plus the
 * systemd state directories).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PUBLISHER } from "../support/publisher.ts";

const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
const have = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const alreadyInstalled = spawnSync("dpkg-query", ["-W", "-f=${Status}", "bpfpilot"], {
  encoding: "utf8",
}).stdout?.includes("installed");
const why = !have("dpkg-deb")
  ? "not a Debian system (no dpkg-deb)"
  : !have("lintian")
  ? "lintian is missing (bash scripts/setup installs it)"
  : alreadyInstalled
  ? "a bpfpilot package is installed here already; this test will not replace or purge it"
  : existsSync("/var/lib/bpfpilot")
  ? "/var/lib/bpfpilot exists on this machine; the purge this test runs would delete it"
  : null;
if (why) console.error(`package_deb_test skipped: ${why}`);

/** Every path on the system that could be ours: names bpfpilot, or systemd enablement state. */
function ourFootprint(): string[] {
  const r = spawnSync("sh", [
    "-c",
    "find /etc /usr /var /opt -xdev \\( -path /var/tmp -o -path /var/cache/apt \\) -prune -o " +
    "\\( -iname '*bpfpilot*' -o -path '/etc/systemd/system/*' -o -path '/var/lib/systemd/deb-systemd-*' \\) -print",
  ], { encoding: "utf8", maxBuffer: 64 << 20 });
  return r.stdout.split("\n").filter(Boolean).sort();
}

function dpkg(...args: string[]): string {
  const r = spawnSync("dpkg", args, {
    encoding: "utf8",
    env: { ...Deno.env.toObject(), DEBIAN_FRONTEND: "noninteractive" },
  });
  assert.equal(r.status, 0, `dpkg ${args.join(" ")}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

Deno.test({
  name: "deb: builds lintian-clean, installs, runs, upgrades keeping an edited conffile, purges",
  ignore: why !== null,
  fn() {
    const dir = mkdtempSync(join(tmpdir(), "bpfp-deb-"));
    const before = ourFootprint();
    try {
      const build = spawnSync(
        "bash",
        [
          join(ROOT, "scripts/package/deb"),
          "--out-dir",
          dir,
          "--version",
          "0.1.0~test1",
          "--lintian",
        ],
        { encoding: "utf8", env: { ...Deno.env.toObject(), ...PUBLISHER } },
      );
      assert.equal(build.status, 0, `build or lintian failed:\n${build.stdout}${build.stderr}`);
      const v1 = join(dir, `bpfpilot_0.1.0~test1_${dpkgArch()}.deb`);
      const fields = execFileSync("dpkg-deb", ["-f", v1, "Depends"], { encoding: "utf8" });
      // The floor is the runtime's: glibc 2.27, not the build host's 2.36.
      assert.match(fields, /libc6 \(>= 2\.27\)/);
      assert.match(fields, /libbpf1 \(>= 1:1\.0\)/);
      // The publisher's settings (packaging/release.conf, overridden here).
      const who = execFileSync("dpkg-deb", ["-f", v1, "Maintainer", "Homepage"], {
        encoding: "utf8",
      });
      assert.match(who, new RegExp(`^Maintainer: ${PUBLISHER.BPFPILOT_MAINTAINER}$`, "m"));
      assert.match(who, new RegExp(`^Homepage: ${PUBLISHER.BPFPILOT_URL}$`, "m"));
      const conffiles = execFileSync("dpkg-deb", ["-I", v1, "conffiles"], { encoding: "utf8" });
      assert.deepEqual(conffiles.trim().split("\n"), [
        "/etc/default/bpfpilot",
        "/etc/default/bpfpilot-audit",
      ]);

      // The upgrade: the same package with a newer version.
      const v2 = repack(v1, dir, "0.1.0~test2");

      dpkg("-i", v1);
      assert.ok(
        existsSync("/etc/systemd/system/timers.target.wants/bpfpilot-audit.timer"),
        "the audit timer is enabled",
      );
      assert.ok(
        !existsSync("/etc/systemd/system/multi-user.target.wants/bpfpilot.service"),
        "the daemon is installed but not enabled",
      );
      assert.equal(
        readFileSync("/usr/lib/systemd/system/bpfpilot.service", "utf8"),
        readFileSync(join(ROOT, "scripts/systemd/bpfpilot.service"), "utf8"),
      );
      assert.equal(
        execFileSync("/usr/bin/bpfpilot", ["--version"], { encoding: "utf8" }).trim(),
        "0.1.0",
      );
      const support = spawnSync("/usr/bin/bpfpilot", ["support", "--json"], { encoding: "utf8" });
      const report = JSON.parse(support.stdout);
      assert.ok(["full", "legacy"].includes(report.level), support.stdout);
      assert.match(report.libbpf.path, /^\/usr\/lib\/[a-z0-9_]+-linux-gnu\/libbpf\.so\.1/);
      assert.ok(existsSync("/usr/share/man/man8/bpfpilot.8.gz"));
      assert.ok(existsSync("/usr/share/bash-completion/completions/bpfpilot"));
      // The example configuration is documentation, and the installed program accepts it.
      const example = "/usr/share/doc/bpfpilot/bpfpilot.conf.example";
      assert.ok(!existsSync("/etc/bpfpilot/bpfpilot.conf"), "no configuration file installed");
      const check = spawnSync("/usr/bin/bpfpilot", ["config", "check", example], {
        encoding: "utf8",
      });
      assert.equal(check.status, 0, check.stderr);
      assert.match(check.stdout, /valid \(0 setting\(s\)/);

      const edited = readFileSync("/etc/default/bpfpilot", "utf8") + 'BPFPILOT_ARGS="--advise"\n';
      writeFileSync("/etc/default/bpfpilot", edited);
      dpkg("-i", "--force-confdef", "--force-confold", v2);
      assert.match(dpkg("-s", "bpfpilot"), /^Version: 0\.1\.0~test2$/m);
      assert.equal(readFileSync("/etc/default/bpfpilot", "utf8"), edited, "conffile edit kept");

      // The daemon's state directory goes with a purge too.
      Deno.mkdirSync("/var/lib/bpfpilot", { recursive: true });
      writeFileSync("/var/lib/bpfpilot/journal.test", "x");
      dpkg("--purge", "bpfpilot");
      assert.deepEqual(ourFootprint(), before, "purge leaves nothing behind");
    } finally {
      if (spawnSync("dpkg-query", ["-W", "bpfpilot"]).status === 0) {
        spawnSync("dpkg", ["--purge", "bpfpilot"]);
      }
      rmSync(dir, { recursive: true, force: true });
    }
  },
});

function dpkgArch(): string {
  return execFileSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).trim();
}

/** The same package with another version (an upgrade without a second build). */
function repack(deb: string, dir: string, version: string): string {
  const tree = join(dir, "repack");
  execFileSync("dpkg-deb", ["-R", deb, tree]);
  const control = join(tree, "DEBIAN/control");
  writeFileSync(
    control,
    readFileSync(control, "utf8").replace(/^Version: .*$/m, `Version: ${version}`),
  );
  const out = join(dir, `bpfpilot_${version}_${dpkgArch()}.deb`);
  execFileSync("dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", tree, out], {
    stdio: "ignore",
  });
  rmSync(tree, { recursive: true, force: true });
  return out;
}
