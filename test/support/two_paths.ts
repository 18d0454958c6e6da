/**
 * Two paths from a client namespace to a server namespace, one losing 2 % of its packets (a tc
 * clsact BPF program, dist/bpf/tc_loss.bpf.o, at the server's ingress: a real loss after the
 * segment left the sender; dropping at the sender's egress makes TCP resend it as new data, so
 * total_retrans never moves), one clean; a sink on both, connections sent from a test cgroup.
 * Used by the tcp_conn tuner's and the audit's tcp_conn tests.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { waitFor } from "./kernel.ts";
import { ROOT, TestNetns } from "./daemon.ts";
import type { Sandbox } from "./sandbox.ts";

const DENO = join(ROOT, "node_modules/.bin/deno");
const TRAFFIC = join(ROOT, "test/support/tcp_traffic.ts");
const PROBE = join(ROOT, "test/support/tcp_conn_probe.py");
const LOSS_OBJECT = join(ROOT, "dist/bpf/tc_loss.bpf.o");
export const LOSSY = "10.77.1.2", CLEAN = "10.77.2.2";
const PORT = 5301, IPERF_PORT = 5302;
/** The client namespace's default: not bbr (this host's default), or the switch has nothing to
 * do; reno, since a namespace may only default to an algorithm the host allows. */
export const CLIENT_DEFAULT = "reno";

/** One connection of sendProbed, as its own socket saw it (test/support/tcp_conn_probe.py). */
export interface ProbedConn {
  to: string;
  /** Congestion control once connect() returned (the tuner's choice made) and at the end. */
  initial: string;
  final: string;
  /** Its own tcpi_total_retrans and tcpi_segs_out at the end. */
  retrans: number;
  segsOut: number;
  /** If its algorithm changed: segs_out at the last poll before (at most what it had sent when
   * it changed) and total_retrans once found changed (at least what it had made by then). */
  switch?: { segsBefore: number; retransAfter: number };
}

/** Client and server namespaces joined by two veth pairs; the first loses 2 % of the data. */
export class TwoPaths {
  readonly #sinks: Deno.ChildProcess[] = [];

  private constructor(readonly client: TestNetns, readonly server: TestNetns) {}

  static create(client: TestNetns, tag: string): TwoPaths {
    const paths = new TwoPaths(client, TestNetns.create(`${tag}s`));
    try {
      paths.#wire();
      return paths;
    } catch (e) {
      paths.close();
      throw e;
    }
  }

  #wire(): void {
    const { client, server } = this;
    client.exec(["sysctl", "-qw", `net.ipv4.tcp_congestion_control=${CLIENT_DEFAULT}`]);
    for (const [i, lossy] of [[1, true], [2, false]] as const) {
      execFileSync("ip", [
        ...["link", "add", `c${i}`, "netns", client.name],
        ...["type", "veth", "peer", "name", `s${i}`, "netns", server.name],
      ]);
      client.exec(["ip", "addr", "add", `10.77.${i}.1/24`, "dev", `c${i}`]);
      server.exec(["ip", "addr", "add", `10.77.${i}.2/24`, "dev", `s${i}`]);
      client.exec(["ip", "link", "set", `c${i}`, "up"]);
      server.exec(["ip", "link", "set", `s${i}`, "up"]);
      if (!lossy) continue;
      // One segment per packet, so that 2 % of packets is 2 % of segments (veth passes GSO
      // packets whole: one drop would take up to 44 segments at once).
      client.exec(["ip", "link", "set", "dev", `c${i}`, "gso_max_segs", "1"]);
      client.exec(["ip", "link", "set", "dev", `c${i}`, "gso_max_size", "1500"]);
      server.exec(["tc", "qdisc", "add", "dev", `s${i}`, "clsact"]);
      server.exec([
        ...["tc", "filter", "add", "dev", `s${i}`, "ingress"],
        ...["bpf", "direct-action", "obj", LOSS_OBJECT, "sec", "tc"],
      ]);
    }
  }

  #listening(port: number, ns = this.server): boolean {
    return spawnSync("ip", ["netns", "exec", ns.name, "ss", "-ltn", `sport = :${port}`], {
      encoding: "utf8",
    }).stdout.includes(`:${port}`);
  }

  /** A sink on PORT in `ns` (the server's by default). */
  async startSink(ns = this.server): Promise<void> {
    this.#sinks.push(
      new Deno.Command("ip", {
        args: ["netns", "exec", ns.name, DENO, "run", "-A", TRAFFIC, "sink", `${PORT}`],
        stdout: "null",
        stderr: "null",
      }).spawn(),
    );
    assert.ok(await waitFor(() => this.#listening(PORT, ns), 15_000), "the sink listens");
  }

  /**
   * n connections inside the cgroup, alternating over `to`: from the client namespace to both
   * paths unless told otherwise; `gapMs` between one connection's end and the next's start.
   */
  async send(
    sb: Sandbox,
    n: number,
    bytes: number,
    { from = this.client, to = [LOSSY, CLEAN], gapMs = 0 } = {},
  ): Promise<{ failed: number; ms: number }> {
    return await this.#inCgroup(
      sb,
      `ip netns exec ${from.name} ${DENO} run -A ${TRAFFIC} send ` +
        `${to.map((host) => `${host}:${PORT}`).join(",")} ${n} ${bytes} ${gapMs}`,
    );
  }

  /** As send, from the client namespace, and each connection's own figures besides. */
  async sendProbed(
    sb: Sandbox,
    n: number,
    bytes: number,
    { to = [LOSSY, CLEAN], gapMs = 0 } = {},
  ): Promise<{ failed: number; ms: number; conns: ProbedConn[] }> {
    return await this.#inCgroup(
      sb,
      `ip netns exec ${this.client.name} python3 ${PROBE} send ` +
        `${to.map((host) => `${host}:${PORT}`).join(",")} ${n} ${bytes} ${gapMs}`,
    );
  }

  /** Runs `cmd` in the sandbox's cgroup; its last line of output, parsed. */
  async #inCgroup<T>(sb: Sandbox, cmd: string): Promise<T> {
    const out = await new Deno.Command("sh", {
      args: ["-c", `echo $$ > ${sb.cg.path}/cgroup.procs && exec ${cmd}`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
  }

  /** iperf3 from the client (outside the cgroup) to `host` with algorithm `cc`. */
  async iperf(
    host: string,
    cc: string,
    seconds = 2,
  ): Promise<{ mbit: number; retransmits: number }> {
    const server = new Deno.Command("ip", {
      args: [
        ...["netns", "exec", this.server.name],
        ...["iperf3", "-s", "-1", "-B", host, "-p", `${IPERF_PORT}`],
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitFor(() => this.#listening(IPERF_PORT), 5000, 50);
      const out = this.client.exec(
        ["iperf3", "-c", host, "-p", `${IPERF_PORT}`, "-t", `${seconds}`, "-C", cc, "--json"],
        { timeoutMs: (seconds + 20) * 1000 },
      );
      const end = JSON.parse(out).end;
      return {
        mbit: end.sum_received.bits_per_second / 1e6,
        retransmits: end.sum_sent.retransmits,
      };
    } finally {
      try {
        server.kill("SIGKILL");
      } catch {
        // exited after its one test
      }
      await server.status;
    }
  }

  close(): void {
    for (const sink of this.#sinks) {
      try {
        sink.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    this.server.delete();
  }
}
