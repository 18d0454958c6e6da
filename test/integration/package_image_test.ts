/**
 * The container image, built with podman (deno task package:image) and run here the way the
 * DaemonSet runs it: privileged, host network and PIDs, the host's BTF mounted. `support --json`
 * in the container must find the image's own libbpf and load BPF programs; the image carries no
 * compiler. The test image is removed afterwards (the mmdebstrap base stays as a cache).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";

const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
const IMAGE = `localhost/bpfpilot-test:${Deno.pid}`;
const canInstall = Deno.uid() === 0 &&
  spawnSync("sh", ["-c", "command -v apt-get"]).status === 0;
const havePodman = spawnSync("sh", ["-c", "command -v podman"]).status === 0;
const why = !havePodman && !canInstall ? "podman is missing and cannot be installed here" : null;
if (why) console.error(`package_image_test skipped: ${why}`);

function image(...args: string[]) {
  return spawnSync("bash", [join(ROOT, "scripts/package/image"), ...args], { encoding: "utf8" });
}

Deno.test({
  name: "image: podman builds it, support --json runs in it with the host's BTF, no compiler",
  ignore: why !== null,
  fn() {
    const build = image("--tag", IMAGE);
    try {
      assert.equal(build.status, 0, build.stderr);
      const flags = image("--run-flags").stdout.trim().split(/\s+/).filter(Boolean);
      const run = (...args: string[]) =>
        spawnSync("podman", ["run", "--rm", ...flags, ...args], { encoding: "utf8" });

      const support = run(
        "--privileged",
        "--network=host",
        "--pid=host",
        "-v",
        "/sys/kernel/btf:/sys/kernel/btf:ro",
        IMAGE,
        "support",
        "--json",
      );
      assert.equal(support.status, 0, support.stdout + support.stderr);
      const report = JSON.parse(support.stdout);
      assert.ok(["full", "legacy"].includes(report.level), support.stdout);
      assert.match(report.libbpf.path, /^\/usr\/lib\/[a-z0-9_]+-linux-gnu\/libbpf\.so\.1/);

      const version = run(IMAGE, "--version");
      assert.equal(version.stdout.trim(), "0.1.0", version.stderr);
      const compilers = run("--entrypoint", "sh", IMAGE, "-c", "command -v cc gcc clang || true");
      assert.equal(compilers.stdout.trim(), "", "no compiler in the image");
    } finally {
      spawnSync("podman", ["rmi", "-f", IMAGE], { stdio: "ignore" });
    }
  },
});
