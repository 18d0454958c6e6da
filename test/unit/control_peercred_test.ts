/**
 * The query client checks who answers on the control socket (SO_PEERCRED), not only who owns
 * the socket file. The case the file checks cannot catch: a root-owned socket file, in a
 * directory only root can write, whose listening socket is served by another uid (root bound
 * it, then the serving process runs as `nobody`: a root service that drops privileges, or a
 * listening descriptor handed on). Real unix sockets in a temp dir, listeners in perl.
 */
import assert from "node:assert/strict";
import {
  checkSocketTrust,
  ControlClientError,
  requestControl,
} from "../../src/daemon/control/client.ts";

const IS_ROOT = Deno.uid() === 0;

/**
 * perl LISTENER path mode action: binds `path` as the caller, then (mode "drop") becomes uid and
 * gid 65534 before listen(2), whose credentials SO_PEERCRED reports; "ready" once listening.
 * action: "answer" a valid answer, "silent" accept and never answer, "big" 200 bytes without
 * a newline, "nolisten" bind only (a stale socket).
 */
const LISTENER_PL = `
use Socket;
my ($path, $mode, $action) = @ARGV;
socket(my $s, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
bind($s, pack_sockaddr_un($path)) or die "bind: $!";
if ($mode eq "drop") { $) = "65534 65534"; $( = 65534; $> = 65534; $< = 65534; die "setuid" if $> != 65534; }
if ($action eq "nolisten") { print "ready\\n"; STDOUT->flush; sleep 60; exit 0; }
listen($s, 5) or die "listen: $!";
print "ready\\n"; STDOUT->flush;
accept(my $c, $s) or die "accept: $!";
my $req = <$c>;
if ($action eq "answer") { syswrite($c, '{"v":1,"ok":true,"data":"evil"}' . "\\n"); }
elsif ($action eq "big") { syswrite($c, "x" x 200); sleep 60; }
else { sleep 60; }
close $c;
`;

async function withListener(
  mode: "drop" | "keep",
  action: "answer" | "silent" | "big" | "nolisten",
  fn: (path: string, pid: number) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bpfp-peercred-" }); // 0700, ours: trusted
  const path = `${dir}/control.sock`;
  if (mode === "drop") await Deno.chmod(dir, 0o711); // nobody must reach the socket to listen
  const child = new Deno.Command("perl", {
    args: ["-e", LISTENER_PL, path, mode, action],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const first = await reader.read();
    assert.match(first.value ?? "", /ready/, "listener did not start");
    reader.releaseLock();
    await fn(path, child.pid);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.output().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "query client: a root-owned socket answered by another uid is refused (SO_PEERCRED)",
  ignore: !IS_ROOT,
  async fn() {
    await withListener("drop", "answer", async (path, pid) => {
      const info = await Deno.lstat(path);
      assert.equal(info.uid, 0, "the socket file is root's");
      checkSocketTrust(path); // the file-level checks pass: only the peer's uid tells
      await assert.rejects(
        () => requestControl({ verb: "status" }, { socketPath: path, timeoutMs: 5000 }),
        (e: unknown) => {
          assert.ok(e instanceof ControlClientError, String(e));
          assert.equal(e.kind, "untrusted");
          assert.equal(
            e.message,
            `refusing the control socket ${path}: the process answering on it (pid ${pid}) ` +
              `runs as uid 65534, not root; it is not bpfpilot's. Check who listens on it`,
          );
          return true;
        },
      );
    });
  },
});

Deno.test("query client: a listener running as root or as the caller is answered", async () => {
  await withListener("keep", "answer", async (path) => {
    const answer = await requestControl({ verb: "status" }, { socketPath: path });
    assert.deepEqual(answer, { v: 1, ok: true, data: "evil" });
  });
});

Deno.test("query client: a silent daemon times out; an over-long answer is cut", async () => {
  await withListener("keep", "silent", async (path) => {
    const started = Date.now();
    await assert.rejects(
      () => requestControl({ verb: "status" }, { socketPath: path, timeoutMs: 300 }),
      (e: unknown) =>
        e instanceof ControlClientError && e.kind === "timeout" &&
        /did not answer within 0\.3 s/.test(e.message),
    );
    assert.ok(Date.now() - started < 3000, "the timeout holds");
  });
  await withListener("keep", "big", async (path) => {
    await assert.rejects(
      () => requestControl({ verb: "status" }, { socketPath: path, maxResponseBytes: 100 }),
      (e: unknown) =>
        e instanceof ControlClientError && e.kind === "protocol" &&
        /exceeds 100 bytes/.test(e.message),
    );
  });
});

Deno.test("query client: absent and stale sockets mean the daemon is not running", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bpfp-peercred-" });
  try {
    await assert.rejects(
      () => requestControl({ verb: "status" }, { socketPath: `${dir}/none.sock` }),
      (e: unknown) =>
        e instanceof ControlClientError && e.kind === "not-running" &&
        /no control socket at/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await withListener("keep", "nolisten", async (path) => {
    await assert.rejects(
      () => requestControl({ verb: "status" }, { socketPath: path }),
      (e: unknown) =>
        e instanceof ControlClientError && e.kind === "not-running" &&
        /is left over and refuses connections/.test(e.message),
    );
  });
});
