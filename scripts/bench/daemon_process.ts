/**
 * The daemon under measurement: started as an installed daemon would be (the bundle, straight
 * under Deno, no launcher shell in between) so its pid is the daemon's own, with every stderr
 * line timestamped on arrival. Stopping it sends SIGTERM and awaits the reaped exit status.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { benchCgroup } from "./cgroup.ts";
import { onCleanup } from "./cleanup.ts";

export interface Line {
  text: string;
  /** performance.now() when the line arrived. */
  at: number;
}

/** How to exec the daemon: the built bundle when there is one, else the source entry point. */
export function daemonArgv(root: string): { argv: string[]; what: string } {
  const deno = join(root, "node_modules/.bin/deno");
  const bundle = join(root, "dist/bpfpilot.js");
  if (existsSync(bundle)) {
    return {
      argv: [deno, "run", "-A", "--quiet", "--no-config", bundle],
      what: "dist/bpfpilot.js",
    };
  }
  return {
    argv: [
      deno,
      "run",
      "-A",
      "--quiet",
      "--config",
      join(root, "deno.json"),
      join(root, "src/main.ts"),
    ],
    what: "src/main.ts",
  };
}

/**
 * `argv` as the packaged unit (scripts/systemd/bpfpilot.service) starts it: with the unit's
 * capability bounding set and no new privileges, through setpriv, which execs it (same pid).
 * Root from a shell holds every capability, so the daemon re-executes itself once to drop them
 * (a second runtime start); under the unit it has none to drop.
 */
export function asUnitStarts(root: string, argv: string[]): string[] {
  const unit = readFileSync(join(root, "scripts/systemd/bpfpilot.service"), "utf8");
  const line = /^CapabilityBoundingSet=(.+)$/m.exec(unit);
  if (!line) throw new Error("bpfpilot.service has no CapabilityBoundingSet= line");
  const caps = line[1].trim().split(/\s+/).map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`);
  return [
    "setpriv",
    `--bounding-set=-all,${caps.join(",")}`,
    "--inh-caps=-all",
    "--no-new-privs",
    "--",
    ...argv,
  ];
}

export class BenchDaemon {
  readonly lines: Line[] = [];
  /** performance.now() just before the exec. */
  readonly spawnedAt: number;
  readonly #child: Deno.ChildProcess;
  readonly #status: Promise<Deno.CommandStatus>;
  readonly #reading: Promise<void>;
  readonly #undo: () => Promise<void>;
  #waiters: { re: RegExp; resolve: (l: Line) => void }[] = [];
  #exited = false;

  constructor(argv: string[], args: string[], env: Record<string, string> = {}) {
    // Its cgroup programs go on the bench's cgroup, where the workloads run (bench/cgroup.ts).
    if (args[0] === "run" && !args.includes("-c")) args = [...args, "-c", benchCgroup()];
    this.spawnedAt = performance.now();
    this.#child = new Deno.Command(argv[0], {
      args: [...argv.slice(1), ...args],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#status = this.#child.status.then((s) => {
      this.#exited = true;
      return s;
    });
    this.#reading = Promise.all([this.#read(this.#child.stdout), this.#read(this.#child.stderr)])
      .then(() => {});
    const pid = this.#child.pid;
    const stateDir = args.includes("--state-dir") ? args[args.indexOf("--state-dir") + 1] : null;
    const rollsBack = args.includes("--rollback") || args.includes("-R");
    this.#undo = onCleanup(`kill daemon ${pid}`, async () => {
      let killed = false;
      if (!this.#exited) {
        try {
          Deno.kill(pid, "SIGKILL");
          killed = true;
        } catch {
          // gone already
        }
      }
      await this.#status;
      await this.#reading;
      // Killed (Ctrl-C, a stop timeout) before its own --rollback: its changes, host-wide ones
      // such as net_buffer's netdev_budget included, are undone from its journal instead.
      if (killed && rollsBack && stateDir) {
        spawnSync(argv[0], [...argv.slice(1), "rollback", "--state-dir", stateDir], {
          timeout: 60_000,
        });
      }
    });
  }

  /** Its output so far, each line with seconds since `t0` (BPFPILOT_BENCH_DAEMON_LOG). */
  saveLog(path: string, t0 = this.spawnedAt): void {
    Deno.writeTextFileSync(
      path,
      this.lines.map((l) => `${((l.at - t0) / 1000).toFixed(2)} ${l.text}\n`).join(""),
    );
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #read(stream: ReadableStream<Uint8Array>) {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const at = performance.now();
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = { text: buf.slice(0, i), at };
        buf = buf.slice(i + 1);
        this.lines.push(line);
        this.#waiters = this.#waiters.filter((w) => {
          if (!w.re.test(line.text)) return true;
          w.resolve(line);
          return false;
        });
      }
    }
    if (buf) this.lines.push({ text: buf, at: performance.now() });
  }

  /** The first line matching re; rejects on timeout or if the daemon exits first. */
  waitFor(re: RegExp, timeoutMs = 30_000): Promise<Line> {
    const seen = this.lines.find((l) => re.test(l.text));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (why: string) =>
        reject(
          new Error(
            `daemon ${why} before logging ${re}; its output:\n` +
              this.lines.map((l) => `  ${l.text}`).join("\n"),
          ),
        );
      const timer = setTimeout(() => fail(`took over ${timeoutMs} ms`), timeoutMs);
      this.#status.then(() => {
        clearTimeout(timer);
        // Let the reader deliver the last lines first.
        this.#reading.then(() => {
          const l = this.lines.find((x) => re.test(x.text));
          if (l) resolve(l);
          else fail("exited");
        });
      });
      this.#waiters.push({
        re,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  /** Lines matching re that arrived in [from, to). */
  matching(re: RegExp, from = 0, to = Infinity): Line[] {
    return this.lines.filter((l) => l.at >= from && l.at < to && re.test(l.text));
  }

  /**
   * SIGTERM, then wait for the kernel to report the exit (the status promise resolves after
   * waitpid reaped it). exitMs runs from just before kill() to the reap.
   */
  async stop(timeoutMs = 20_000): Promise<{ exitMs: number; code: number; signal: string | null }> {
    const t0 = performance.now();
    Deno.kill(this.pid, "SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<null>((r) => timer = setTimeout(() => r(null), timeoutMs));
    const status = await Promise.race([this.#status, late]);
    const exitMs = performance.now() - t0;
    clearTimeout(timer);
    if (status === null) {
      await this.#undo(); // SIGKILL and reap
      throw new Error(`daemon ${this.pid} did not exit within ${timeoutMs} ms of SIGTERM`);
    }
    await this.#undo(); // already exited: only waits for the output
    return { exitMs, code: status.code, signal: status.signal };
  }
}
