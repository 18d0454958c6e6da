/**
 * Logging to journald for real: the daemon runs as systemd would start it (JOURNAL_STREAM naming
 * its stderr) with the journal socket pointed at a receiver speaking the native protocol
 * (test/support/journal_receiver.ts); iperf3 over loopback in the test's own namespace makes
 * tcp_buffer raise a deliberately low tcp_rmem, and the entries must carry MESSAGE_ID, PRIORITY
 * and the BPFPILOT_* fields with the change's values. Without the socket, records reach stderr
 * (one warning, not one per record) and go back to the journal once it answers.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { IS_ROOT } from "../support/kernel.ts";
import { type DaemonProcess, LAUNCHER, withHostSysctls } from "../support/daemon.ts";
import { type Sandbox, withSandbox } from "../support/sandbox.ts";
import { JournalReceiver } from "../support/journal_receiver.ts";
import { MESSAGE_IDS } from "../../src/log/journal_fields.ts";

const LOW = [4096, 16384, 65536];
const RMEM = "net.ipv4.tcp_rmem";
/**
 * Put back whatever happens: what the daemon may touch outside the test's namespace, and the
 * datagram queue length, raised to systemd's own setting (50-default.conf: 512) as on any
 * systemd host; the kernel's default of 10 makes a burst of start-up records overflow a
 * receiver (the daemon then writes them to stderr, tested below).
 */
const HOST_SYSCTLS = ["net.ipv4.tcp_mem", RMEM, "net.ipv4.tcp_wmem", "net.unix.max_dgram_qlen"];

/** The sandbox's confined daemon, logging where `extra` and the environment say (not -s). */
function startLoggingAsAsked(sb: Sandbox, extra: string[], env: Record<string, string>) {
  return sb.spawn(sb.args(extra).filter((a) => a !== "--stderr"), env);
}

/** As systemd starts a service: JOURNAL_STREAM is the dev:ino of the stderr it is given. */
function startUnderSystemd(sb: Sandbox, env: Record<string, string>): DaemonProcess {
  const args = sb.args().filter((a) => a !== "--stderr");
  return sb.spawnVia("sh", [
    "-c",
    'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) && export JOURNAL_STREAM && exec "$0" "$@"',
    LAUNCHER,
    ...args,
  ], env);
}

function netnsInode(name: string): string {
  return execFileSync("stat", ["-L", "-c", "%i", `/run/netns/${name}`], { encoding: "utf8" })
    .trim();
}

Deno.test({
  name: "under systemd each tcp_rmem change is a journal entry with MESSAGE_ID and BPFPILOT_*",
  ignore: !IS_ROOT,
  async fn() {
    await withHostSysctls(HOST_SYSCTLS, async () => {
      execFileSync("sysctl", ["-qw", "net.unix.max_dgram_qlen=512"]);
      const rx = new JournalReceiver(); // the queue length is taken when the socket is made
      try {
        await withSandbox("jd", async (sb) => {
          sb.ns.setSysctl(RMEM, LOW);
          const d = startUnderSystemd(sb, { BPFPILOT_JOURNAL_SOCKET: rx.path });
          // A cold module cache (first run after a change) makes the start slow: wait longer, and
          // say what the daemon printed if it never starts.
          const started = await rx.waitFor((f) => f.MESSAGE_ID === MESSAGE_IDS.started, 60_000)
            .catch((e) => {
              throw new Error(`${(e as Error).message}\ndaemon output:\n${d.lines.join("\n")}`);
            });
          assert.match(started.MESSAGE, /^bpfpilot started \(\d+ tuners/);
          sb.ns.iperf(4);
          await rx.waitFor((f) =>
            f.MESSAGE_ID === MESSAGE_IDS.changed && f.BPFPILOT_SYSCTL === RMEM
          );
          assert.equal(await d.stop("SIGTERM"), 0);
          await rx.waitFor((f) => f.MESSAGE_ID === MESSAGE_IDS.stopped, 5000);
          const live = sb.ns.sysctl(RMEM).join(" ");
          const netns = `ns:${netnsInode(sb.ns.name)}`;

          const changes = rx.matching((f) =>
            f.MESSAGE_ID === MESSAGE_IDS.changed && f.BPFPILOT_SYSCTL === RMEM
          );
          assert.ok(changes.length >= 1);
          for (const c of changes) {
            assert.equal(c.PRIORITY, "6");
            assert.equal(c.SYSLOG_IDENTIFIER, "bpfpilot");
            assert.equal(c.BPFPILOT_TUNER, "tcp_buffer");
            assert.equal(c.BPFPILOT_NETNS, netns);
            assert.equal(c.BPFPILOT_SCENARIO, "need to increase TCP buffer size(s)");
            assert.equal(c.BPFPILOT_REASON, c.MESSAGE);
            // The fields carry the values the message states.
            assert.ok(
              c.MESSAGE.includes(`from (${c.BPFPILOT_FROM}) -> (${c.BPFPILOT_TO})`),
              c.MESSAGE,
            );
          }
          // A chain from the value set here to the live one, each step logged once.
          assert.equal(changes[0].BPFPILOT_FROM, LOW.join(" "));
          for (let i = 1; i < changes.length; i++) {
            assert.equal(changes[i].BPFPILOT_FROM, changes[i - 1].BPFPILOT_TO);
          }
          assert.equal(changes.at(-1)!.BPFPILOT_TO, live);
          assert.notEqual(live, LOW.join(" "), "the max grew");
          // Each change also has its scenario line, with the same structured values.
          const scenarios = rx.matching((f) =>
            f.MESSAGE_ID === MESSAGE_IDS.scenario && f.BPFPILOT_SYSCTL === RMEM
          );
          assert.deepEqual(
            scenarios.map((f) => [f.BPFPILOT_FROM, f.BPFPILOT_TO, f.BPFPILOT_NETNS]),
            changes.map((f) => [f.BPFPILOT_FROM, f.BPFPILOT_TO, f.BPFPILOT_NETNS]),
          );
          assert.ok(rx.matching((f) => f.MESSAGE_ID === MESSAGE_IDS.tuner_active).length >= 2);
          assert.ok(rx.matching((f) => f.MESSAGE_ID === MESSAGE_IDS.summary).length >= 1);
          // Nothing went to the stream: the socket took every record.
          assert.deepEqual(d.matching(/Due to|cannot log to the journal|started/), []);
        });
      } finally {
        rx.close();
      }
    });
  },
});

Deno.test({
  name: "--log journal without its socket: stderr with one warning, back to the journal after",
  ignore: !IS_ROOT,
  async fn() {
    await withSandbox("jdfb", async (sb) => {
      const socket = `${sb.state}/journal.socket`;
      const d = startLoggingAsAsked(sb, ["--log", "journal"], { BPFPILOT_JOURNAL_SOCKET: socket });
      await d.waitFor(/^bpfpilot started/);
      const warnings = d.matching(/cannot log to the journal/);
      assert.equal(warnings.length, 1, d.lines.join("\n"));
      assert.match(
        warnings[0],
        /^bpfpilot: cannot log to the journal \(sending to .*journal\.socket: No such file or directory\); logging to stderr until it answers again$/,
      );
      assert.ok(d.matching(/^bpfpilot: tuner tcp_buffer: active/).length === 1, "records kept");
      const before = d.lines.length;

      // journald is back: the next record (a reload) goes there, with a note of what was missed.
      const rx = new JournalReceiver(socket);
      try {
        Deno.kill(d.pid, "SIGHUP");
        const reload = await rx.waitFor((f) => f.MESSAGE_ID === MESSAGE_IDS.reloaded);
        assert.equal(reload.MESSAGE, "configuration reloaded (SIGHUP)");
        const back = await rx.waitFor((f) => f.MESSAGE_ID === MESSAGE_IDS.log_fallback);
        assert.match(back.MESSAGE, /^logging to the journal again; \d+ record\(s\) went to stderr/);
        assert.equal(d.lines.slice(before).filter((l) => /reloaded/.test(l)).length, 0);
        assert.equal(await d.stop("SIGTERM"), 0);
        await rx.waitFor((f) => f.MESSAGE_ID === MESSAGE_IDS.stopped, 5000);
      } finally {
        rx.close();
      }
    });
  },
});
