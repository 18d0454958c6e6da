/**
 * Running the real daemon in tests: a subprocess through the launcher, its stderr lines
 * collected, helpers to wait for a line and to stop it; plus network namespaces with loopback
 * iperf3 traffic, a child cgroup, and sysctl access inside a namespace. Everything a helper
 * creates it also removes (namespaces by name, processes by PID).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";
import { ChildCgroup } from "./child_cgroup.ts";
import { tbf } from "../../scripts/bench/netns.ts";

export const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
export const LAUNCHER = join(ROOT, "scripts/bpfpilot");

export class DaemonProcess {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<Deno.CommandStatus>;
  #reading: Promise<void>;
  #waiters: { re: RegExp; resolve: (l: string) => void }[] = [];

  private constructor(args: string[], env: Record<string, string>, command = LAUNCHER) {
    this.#child = new Deno.Command(command, {
      args,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reading = Promise.all([
      this.#read(this.#child.stdout),
      this.#read(this.#child.stderr),
    ]).then(() => {});
    this.#done = this.#child.status;
  }

  get pid(): number {
    return this.#child.pid;
  }

  static start(args: string[], env: Record<string, string> = {}): DaemonProcess {
    return new DaemonProcess(args, env);
  }

  /** The daemon behind a wrapper (e.g. unshare) that ends by exec'ing the launcher. */
  static startVia(
    command: string,
    args: string[],
    env: Record<string, string> = {},
  ): DaemonProcess {
    return new DaemonProcess(args, env, command);
  }

  async #read(stream: ReadableStream<Uint8Array>) {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.lines.push(line);
        this.#waiters = this.#waiters.filter((w) => {
          if (!w.re.test(line)) return true;
          w.resolve(line);
          return false;
        });
      }
    }
    if (buf) this.lines.push(buf);
  }

  /** The first line (already seen or still to come) that matches, or an error after timeout. */
  waitFor(re: RegExp, timeoutMs = 20_000): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(`no line matching ${re} within ${timeoutMs} ms:\n${this.lines.join("\n")}`),
        );
      }, timeoutMs);
      this.#waiters.push({
        re,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  /** Sends `signal` and waits for the exit; returns the exit code. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<number> {
    try {
      this.#child.kill(signal);
    } catch {
      // already gone
    }
    const status = await this.#done;
    await this.#reading;
    return status.code;
  }

  async exited(): Promise<number> {
    const s = await this.#done;
    await this.#reading;
    return s.code;
  }

  matching(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l));
  }
}

/**
 * `run` arguments for a daemon that touches nothing of the host's: logs to stderr, its own state
 * directory, only the test's namespace tuned, admin writes watched in the test's child cgroup.
 */
export function isolatedRunArgs(
  ns: { name: string },
  stateDir: string,
  cg: { path: string },
  extra: string[] = [],
): string[] {
  return [
    "run",
    "--stderr",
    "--state-dir",
    stateDir,
    "--netns",
    ns.name,
    "--cooldown",
    "1",
    "-c",
    cg.path,
    ...extra,
  ];
}

export function tempStateDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "bpfp-state-"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** TestNetns.longPath's addresses (this namespace's end, the far one's) and its UDP stream's port. */
const FAR_RX = "198.18.9.1", FAR_TX = "198.18.9.2", FAR_UDP_PORT = 5299;

/** A network namespace with loopback up, created by this test and deleted by it. */
export class TestNetns {
  private constructor(readonly name: string) {}

  static create(tag: string): TestNetns {
    const name = `bpfp-t-${tag}-${Deno.pid}`;
    execFileSync("ip", ["netns", "add", name]);
    execFileSync("ip", ["-n", name, "link", "set", "lo", "up"]);
    return new TestNetns(name);
  }

  exec(cmd: string[], opts: { timeoutMs?: number } = {}): string {
    return execFileSync("ip", ["netns", "exec", this.name, ...cmd], {
      encoding: "utf8",
      timeout: opts.timeoutMs ?? 60_000,
    });
  }

  sysctl(name: string): number[] {
    return this.exec(["sysctl", "-n", name]).trim().split(/\s+/).map(Number);
  }

  setSysctl(name: string, values: number[]): void {
    this.exec(["sysctl", "-qw", `${name}=${values.join(" ")}`]);
  }

  #far: string | null = null;
  #farProcs: Deno.ChildProcess[] = [];

  /** Waits up to 2.5 s for a TCP listener on `port` in namespace `ns`. */
  static #awaitListener(ns: string, port: number): void {
    for (let i = 0; i < 50; i++) {
      const r = spawnSync("ip", ["netns", "exec", ns, "ss", "-Hltn", `sport = :${port}`], {
        encoding: "utf8",
      });
      if (r.stdout.includes(`:${port}`)) return;
      execFileSync("sleep", ["0.05"]);
    }
  }

  /**
   * A ~50 ms path into this namespace (FAR_RX) from a peer namespace of its own (`<name>-far`,
   * FAR_TX), as the bench's WAN path without netem: veth, the data direction limited to 100
   * Mbit/s by tbf, the ACK direction's 10 Mbit/s tbf queue kept full by a UDP stream (40 ms).
   * Loopback alone moves GB/s in round trips of microseconds: its flows need a few KB a round
   * trip, and tcp_buffer grows a receive max only for a flow that fills a good share of it
   * (tcp_buffer_rules.ts WINDOW_LIMITED_SHARE). Made once, removed by delete(). Returns the far
   * namespace's name and this namespace's address on the path.
   */
  longPath(): { far: string; address: string } {
    if (this.#far) return { far: this.#far, address: FAR_RX };
    const far = `${this.name}-far`;
    execFileSync("ip", ["netns", "add", far]);
    this.#far = far;
    execFileSync("ip", [
      ...["link", "add", "va", "netns", this.name],
      ...["type", "veth", "peer", "name", "vb", "netns", far],
    ]);
    for (const [ns, dev, addr] of [[this.name, "va", FAR_RX], [far, "vb", FAR_TX]]) {
      execFileSync("ip", ["-n", ns, "addr", "add", `${addr}/30`, "dev", dev]);
      execFileSync("ip", ["-n", ns, "link", "set", dev, "up"]);
      execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
    tbf(new TestNetns(far), "vb", "100mbit", "32kb", "20ms"); // data direction
    tbf(this, "va", "10mbit", "16kb", "40ms"); // ACK direction, kept full below
    const spawn = (ns: string, args: string[]) =>
      this.#farProcs.push(
        new Deno.Command("ip", {
          args: ["netns", "exec", ns, ...args],
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    spawn(far, ["iperf3", "-s", "-p", `${FAR_UDP_PORT}`]);
    TestNetns.#awaitListener(far, FAR_UDP_PORT);
    spawn(this.name, [
      ...["iperf3", "-u", "-c", FAR_TX, "-p", `${FAR_UDP_PORT}`],
      ...["-b", "10.5M", "-t", "86400"],
    ]);
    execFileSync("sleep", ["1"]); // the ACK queue fills
    return { far, address: FAR_RX };
  }

  /**
   * iperf3 for `seconds` (servers exit after one test) over two paths at once: loopback inside
   * the namespace (its sockets send and receive here: the send side's limits) and the long path
   * into it (longPath: its receiver here needs more than a small receive max).
   */
  iperf(seconds: number, extra: string[] = [], port = 5201): void {
    this.longPath();
    const servers = [["127.0.0.1", port], [FAR_RX, port + 1]] as const;
    const spawned = servers.map(([addr, p]) =>
      new Deno.Command("ip", {
        args: ["netns", "exec", this.name, "iperf3", "-s", "-1", "-B", addr, "-p", `${p}`],
        stdout: "null",
        stderr: "null",
      }).spawn()
    );
    try {
      for (const [, p] of servers) TestNetns.#awaitListener(this.name, p);
      const client = (ns: string, addr: string, p: number) =>
        ["ip", "netns", "exec", ns, "iperf3", "-c", addr, "-p", `${p}`, "-t", `${seconds}`]
          .concat(extra).map((a) => `'${a}'`).join(" ");
      // Both at once, and both must succeed.
      const script = `${client(this.#far!, FAR_RX, port + 1)} > /dev/null & far=$!; ` +
        `${client(this.name, "127.0.0.1", port)} > /dev/null; near=$?; wait $far; ` +
        `[ $? -eq 0 ] && [ $near -eq 0 ]`;
      execFileSync("sh", ["-c", script], { timeout: (seconds + 20) * 1000 });
    } finally {
      for (const server of spawned) {
        try {
          server.kill("SIGKILL");
        } catch {
          // exited after its one test
        }
      }
    }
  }

  delete(): void {
    for (const p of this.#farProcs) {
      try {
        p.kill("SIGKILL");
      } catch {
        // exited
      }
    }
    if (this.#far) spawnSync("ip", ["netns", "del", this.#far]);
    spawnSync("ip", ["netns", "del", this.name]);
  }
}

/** The test's child cgroup, `bpfp-test-<tag>-<pid>`: cgroup programs and what they watch. */
export class TestCgroup extends ChildCgroup {
  static create(tag: string): TestCgroup {
    return new TestCgroup(`bpfp-test-${tag}-${Deno.pid}`);
  }

  /** Runs a shell command inside this cgroup (the shell moves itself in, then execs). */
  run(command: string): string {
    const [sh, ...args] = this.wrapShell(command);
    return execFileSync(sh, args, { encoding: "utf8" });
  }

  /** Removes it, retrying for 5 s while members exit (left behind, silently, if still busy). */
  remove(): void {
    this.removeSync();
  }
}

/** IDs of the BPF programs a process holds (program and link fds, from /proc/PID/fdinfo). */
export function programIdsOf(pid: number): number[] {
  return fdinfoIds(pid, /^prog_id:\s+(\d+)$/m);
}

/** IDs of the BPF maps a process holds (map fds, from /proc/PID/fdinfo). */
export function mapIdsOf(pid: number): number[] {
  return fdinfoIds(pid, /^map_id:\s+(\d+)$/m);
}

function fdinfoIds(pid: number, field: RegExp): number[] {
  const ids = new Set<number>();
  for (const e of Deno.readDirSync(`/proc/${pid}/fdinfo`)) {
    try {
      const m = field.exec(Deno.readTextFileSync(`/proc/${pid}/fdinfo/${e.name}`));
      if (m) ids.add(Number(m[1]));
    } catch {
      // fd closed meanwhile
    }
  }
  return [...ids];
}

/** Which of these program IDs the kernel still has loaded. */
export function stillLoaded(ids: number[]): number[] {
  const out = execFileSync("bpftool", ["prog", "show", "--json"], { encoding: "utf8" });
  const live = new Set((JSON.parse(out) as { id: number }[]).map((p) => p.id));
  return ids.filter((id) => live.has(id));
}

/** Reads a host sysctl, runs fn, and restores the value whatever happens. */
export async function withHostSysctls<T>(names: string[], fn: () => Promise<T>): Promise<T> {
  const saved = names.map((
    n,
  ) => [n, execFileSync("sysctl", ["-n", n], { encoding: "utf8" }).trim()]);
  try {
    return await fn();
  } finally {
    for (const [n, v] of saved) execFileSync("sysctl", ["-qw", `${n}=${v}`]);
  }
}
