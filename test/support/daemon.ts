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

  /** iperf3 over loopback inside the namespace for `seconds` (server exits after one test). */
  iperf(seconds: number, extra: string[] = [], port = 5201): void {
    const server = new Deno.Command("ip", {
      args: ["netns", "exec", this.name, "iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", `${port}`],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      for (let i = 0; i < 50; i++) {
        const r = spawnSync("ip", ["netns", "exec", this.name, "ss", "-ltn", `sport = :${port}`], {
          encoding: "utf8",
        });
        if (r.stdout.includes(`:${port}`)) break;
        execFileSync("sleep", ["0.05"]);
      }
      this.exec(
        ["iperf3", "-c", "127.0.0.1", "-p", `${port}`, "-t", `${seconds}`, ...extra],
        { timeoutMs: (seconds + 20) * 1000 },
      );
    } finally {
      try {
        server.kill("SIGKILL");
      } catch {
        // exited after its one test
      }
    }
  }

  delete(): void {
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
