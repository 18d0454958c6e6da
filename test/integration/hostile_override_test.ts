/**
 * A hostile local user cannot blind the admin-override detector: as `nobody`, in a user+net
 * namespace of their own, a loop writes that namespace's tcp_rmem as fast as it can for 20 s.
 * Meanwhile root sets tcp_wmem in the tuned namespace; the daemon must see it, stop tuning it and
 * keep the administrator's value under traffic, lose no event and record nothing for the user's
 * namespace.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { IS_ROOT } from "../support/kernel.ts";
import { withSandbox } from "../support/sandbox.ts";

const FLOOD_S = 20;
const ADMIN = [4096, 16384, 70000];

Deno.test({
  name: "an unprivileged write flood does not hide the admin's write (override honoured)",
  ignore: !IS_ROOT,
  async fn() {
    await withSandbox("flood", async ({ ns, cg, state, start }) => {
      ns.setSysctl("net.ipv4.tcp_wmem", [4096, 16384, 65536]);
      const daemon = start();
      let flood: Deno.ChildProcess | null = null;
      try {
        await daemon.waitFor(/bpfpilot started/);
        // The flooder lives in the watched cgroup, as nobody, in its own user+net namespace.
        // timeout runs inside the namespace, so the loop ends on its own even if a parent dies.
        flood = new Deno.Command("sh", {
          args: [
            "-c",
            `echo $$ > ${cg.path}/cgroup.procs && exec setpriv --reuid=65534 --regid=65534 ` +
            `--clear-groups unshare -Urn timeout ${FLOOD_S} sh -c ` +
            `'while :; do echo "4096 16384 70000" > /proc/sys/net/ipv4/tcp_rmem; done'`,
          ],
          stdout: "null",
          stderr: "null",
        }).spawn();
        await new Promise((r) => setTimeout(r, 3000));
        cg.run(`ip netns exec ${ns.name} sysctl -qw net.ipv4.tcp_wmem="${ADMIN.join(" ")}"`);
        await daemon.waitFor(/modified sysctl 'net\.ipv4\.tcp_wmem'/, 10_000);
        ns.iperf(4);
        assert.deepEqual(ns.sysctl("net.ipv4.tcp_wmem"), ADMIN, "the admin's value stands");
        assert.deepEqual(daemon.matching(/change net\.ipv4\.tcp_wmem/), []);
        await flood.status;
        flood = null;
        assert.equal(await daemon.stop(), 0);
      } finally {
        if (flood) {
          // Every process of the flood is in the test's cgroup: end them all, orphans included.
          Deno.writeTextFileSync(`${cg.path}/cgroup.kill`, "1");
          await flood.status;
        }
      }
      const line = daemon.matching(/# Events: tuner 'sysctl' hooks fired/)[0];
      assert.ok(line, daemon.lines.join("\n"));
      const m = new RegExp(
        [
          String.raw`fired (\d+) times past their cheap tests = \d+ with no limit near`,
          String.raw`\+ (\d+) filtered \+ \d+ folded by the rate limiter \+ \d+ sent as events`,
          String.raw`\+ (\d+) lost to a full ring buffer \+ \d+ muted`,
          String.raw`\(nothing they could change\);`,
          String.raw`(\d+) events reached userspace`,
        ].join(" "),
      ).exec(line);
      assert.ok(m, line);
      const [hits, filtered, lost, events] = m.slice(1).map(Number);
      assert.ok(hits > 10_000, `the flood ran: ${line}`);
      assert.ok(filtered >= hits - 5, `the user's writes were filtered in the kernel: ${line}`);
      assert.ok(events <= 5, `only the admin's write reached userspace: ${line}`);
      assert.equal(lost, 0, line);
      assert.deepEqual(daemon.matching(/modified sysctl 'net\.ipv4\.tcp_rmem'/), []);
      const saved = JSON.parse(readFileSync(`${state}/state.json`, "utf8"));
      assert.deepEqual(
        saved.overrides.map((o: { sysctl: string }) => o.sysctl),
        ["net.ipv4.tcp_wmem"],
        "one record: the admin's; none for the user's namespace",
      );
    });
  },
});
