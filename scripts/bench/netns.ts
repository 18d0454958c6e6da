/**
 * Network namespaces the benchmark creates (and deletes by name, also on error), the veth link
 * between two of them, and processes run inside them (stopped by pid). Addresses come from
 * 198.18.0.0/15, the range RFC 2544 sets aside for benchmarks; they exist only inside these
 * namespaces.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { inCgroup } from "./cgroup.ts";
import { onCleanup } from "./cleanup.ts";

export class BenchNetns {
  readonly delete: () => Promise<void>;

  private constructor(readonly name: string) {
    this.delete = onCleanup(`delete netns ${name}`, () => {
      spawnSync("ip", ["netns", "del", name]);
    });
  }

  static create(tag: string): BenchNetns {
    const name = `bpfp-bench-${tag}-${Deno.pid}`;
    execFileSync("ip", ["netns", "add", name]);
    const ns = new BenchNetns(name);
    ns.exec(["ip", "link", "set", "lo", "up"]);
    return ns;
  }

  exec(cmd: string[], timeoutMs = 60_000): string {
    return execFileSync("ip", ["netns", "exec", this.name, ...cmd], {
      encoding: "utf8",
      timeout: timeoutMs,
    });
  }

  sysctl(name: string): string {
    return this.exec(["sysctl", "-n", name]).trim().split(/\s+/).join(" ");
  }

  setSysctl(name: string, value: string): void {
    this.exec(["sysctl", "-qw", `${name}=${value}`]);
  }

  /**
   * A workload in this namespace and in the bench's cgroup (its sockops programs see it);
   * stop() kills it by pid and reaps it.
   */
  spawn(cmd: string[], opts: { stdout?: "piped" | "null" } = {}): NsProcess {
    return new NsProcess(this.name, cmd, opts.stdout ?? "null");
  }

  /** Waits until something listens on the TCP port (iperf3 servers take a moment). */
  async waitListening(port: number, timeoutMs = 5000): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (performance.now() < until) {
      const r = spawnSync("ip", ["netns", "exec", this.name, "ss", "-Hltn", `sport = :${port}`], {
        encoding: "utf8",
      });
      if (r.stdout.includes(`:${port}`)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`nothing listens on port ${port} in ${this.name} after ${timeoutMs} ms`);
  }
}

export class NsProcess {
  /** Complete stdout lines so far (with stdout "piped"). */
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly output: Promise<string>;
  readonly stderr: Promise<string>;
  readonly status: Promise<Deno.CommandStatus>;
  readonly stop: () => Promise<void>;
  #done = false;

  constructor(netns: string, cmd: string[], stdout: "piped" | "null") {
    const [shell, ...args] = inCgroup(["ip", "netns", "exec", netns, ...cmd]);
    this.#child = new Deno.Command(shell, {
      args,
      stdin: "null",
      stdout,
      stderr: "piped",
    }).spawn();
    const decode = async (s: ReadableStream<Uint8Array> | null, lines?: string[]) => {
      if (!s) return "";
      let text = "";
      for await (const c of s.pipeThrough(new TextDecoderStream())) {
        text += c;
        if (lines) lines.splice(0, lines.length, ...text.split("\n").slice(0, -1));
      }
      return text;
    };
    this.output = stdout === "piped" ? decode(this.#child.stdout, this.lines) : Promise.resolve("");
    const errors = this.stderr = decode(this.#child.stderr);
    this.status = this.#child.status.then((s) => {
      this.#done = true;
      return s;
    });
    const pid = this.#child.pid;
    this.stop = onCleanup(`kill ${cmd[0]} ${pid}`, async () => {
      if (!this.#done) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
      await this.status;
      await this.output;
      await errors;
    });
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Resolves once stdout has a line equal to `text`; rejects if the process exits first. */
  async waitLine(text: string, timeoutMs = 10_000): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (!this.lines.includes(text)) {
      if (this.#done) {
        throw new Error(
          `process ${this.pid} exited before printing '${text}': ${await this.stderr}`,
        );
      }
      if (performance.now() > until) {
        throw new Error(`no '${text}' from ${this.pid} in ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Waits for a normal exit (after the given time, kills it and says so). */
  async finished(timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<null>((r) => timer = setTimeout(() => r(null), timeoutMs));
    const s = await Promise.race([this.status, late]);
    clearTimeout(timer);
    if (s === null) {
      await this.stop();
      throw new Error(`process ${this.pid} still running after ${timeoutMs} ms; killed it`);
    }
    const [stdout, stderr] = await Promise.all([this.output, this.stderr]);
    await this.stop();
    return { code: s.code, stdout, stderr };
  }
}

/** Joins two namespaces with a veth pair, addresses 198.18.0.1/30 (a) and .2 (b). */
export function vethLink(a: BenchNetns, b: BenchNetns): { addrA: string; addrB: string } {
  // Created directly inside the namespaces: the host never sees these interfaces.
  execFileSync("ip", [
    "link",
    "add",
    "bpfb0",
    "netns",
    a.name,
    "type",
    "veth",
    "peer",
    "name",
    "bpfb1",
    "netns",
    b.name,
  ]);
  a.exec(["ip", "addr", "add", "198.18.0.1/30", "dev", "bpfb0"]);
  b.exec(["ip", "addr", "add", "198.18.0.2/30", "dev", "bpfb1"]);
  a.exec(["ip", "link", "set", "bpfb0", "up"]);
  b.exec(["ip", "link", "set", "bpfb1", "up"]);
  return { addrA: "198.18.0.1", addrB: "198.18.0.2" };
}

/** Token-bucket rate limit on a namespace's veth end (egress); also the tests' namespaces. */
export function tbf(
  ns: { exec(cmd: string[]): string },
  dev: string,
  rate: string,
  burst: string,
  latency: string,
) {
  ns.exec([
    "tc",
    "qdisc",
    "add",
    "dev",
    dev,
    "root",
    "tbf",
    "rate",
    rate,
    "burst",
    burst,
    "latency",
    latency,
  ]);
}
