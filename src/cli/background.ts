/**
 * `-D`: start the daemon as a detached child and return only once it runs or has failed. The
 * child keeps the caller's stdout/stderr when it logs there (`-s`, as bpftune's daemon(1,1)), and
 * reports on a pipe (see readiness.ts) when it is up or why it could not start, so a script that
 * runs `bpfpilot -D` sees a start error as exit status 1 and never races a half-started daemon.
 */
import type { Readable } from "node:stream";
import { parseReadiness, type ReadinessReport, READY_FD_ENV } from "./readiness.ts";

/** Start-up normally takes under a second; the first probe after boot about 350 ms more. */
export const READY_TIMEOUT_MS = 60_000;

/** The command line without -D (in clusters too: `-dDs` becomes `-ds`). */
export function withoutDaemonFlag(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    if (a === "-D" || a === "--daemon") continue;
    if (/^-[a-zA-Z]+$/.test(a) && a.includes("D")) {
      const rest = a.replaceAll("D", "");
      if (rest !== "-") out.push(rest);
      continue;
    }
    out.push(a);
  }
  return out;
}

/** deno.json of a checkout run from source (scripts/bpfpilot), so the child resolves the same. */
function sourceConfig(): string[] {
  if (!Deno.mainModule.startsWith("file:") || !Deno.mainModule.endsWith("/src/main.ts")) return [];
  const config = new URL("../deno.json", Deno.mainModule).pathname;
  try {
    Deno.statSync(config);
    return ["--config", config];
  } catch {
    return [];
  }
}

function ownCommand(args: string[]): string[] {
  return Deno.build.standalone
    ? [Deno.execPath(), ...args]
    : [Deno.execPath(), "run", "-A", "--quiet", ...sourceConfig(), Deno.mainModule, ...args];
}

interface ChildOutcome {
  report: ReadinessReport | null;
  /** Exit status when the child died before reporting; null while it runs. */
  exitStatus: number | null;
  timedOut: boolean;
}

function awaitReadiness(
  pipe: Readable,
  exited: Promise<number>,
  timeoutMs: number,
): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    let text = "";
    let done = false;
    const finish = async (o: Partial<ChildOutcome>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      pipe.destroy();
      let exitStatus: number | null = null;
      if (!o.report && !o.timedOut) {
        // EOF without a report: the child died; its status arrives a moment later.
        exitStatus = await Promise.race([
          exited,
          new Promise<null>((r) => setTimeout(() => r(null), 2000)),
        ]);
      }
      resolve({ report: o.report ?? null, exitStatus, timedOut: o.timedOut ?? false });
    };
    const timer = setTimeout(() => finish({ timedOut: true }), timeoutMs);
    pipe.on("data", (chunk: Uint8Array | string) => {
      text += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
      if (text.includes("\n")) finish({ report: parseReadiness(text) });
    });
    pipe.on("end", () => finish({ report: parseReadiness(text) }));
    pipe.on("error", () => finish({ report: parseReadiness(text) }));
  });
}

/**
 * Starts the background child with `args` (this process's own, -D removed) and returns the exit
 * status for the parent: 0 once the child runs, else 1 with the child's start error printed.
 */
export async function startInBackground(
  args: readonly string[],
  opts: { keepStdio: boolean; timeoutMs?: number; print?: (line: string) => void },
): Promise<number> {
  const print = opts.print ?? ((l: string) => console.error(l));
  const cmd = ownCommand(withoutDaemonFlag(args));
  const out = opts.keepStdio ? "inherit" : "ignore";
  // Deno.Command cannot hand the child a fourth descriptor. Loaded here, not at the top: any
  // node: module loads Deno's Node layer, which every other start would pay for (~90 ms).
  const builtin = "node:child_process"; // a name the bundler leaves alone (see scripts/build.ts)
  const { spawn } = await import(builtin) as typeof import("node:child_process");
  const child = spawn(cmd[0], cmd.slice(1), {
    detached: true,
    stdio: ["ignore", out, out, "pipe"],
    env: { ...Deno.env.toObject(), [READY_FD_ENV]: "3" },
  });
  const exited = new Promise<number>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.on("error", () => resolve(127));
  });
  const pipe = child.stdio[3] as Readable | null;
  if (!pipe || child.pid === undefined) {
    print("bpfpilot: could not start the background daemon (spawn failed); run without -D");
    return 1;
  }
  const outcome = await awaitReadiness(pipe, exited, opts.timeoutMs ?? READY_TIMEOUT_MS);
  const r = outcome.report;
  if (r?.ready) {
    child.unref();
    const stop = r.pidFile ? `kill $(cat ${r.pidFile})` : `kill ${r.pid}`;
    print(
      `bpfpilot: running in the background as pid ${r.pid}` +
        (r.pidFile ? ` (pid file ${r.pidFile})` : "") + `; stop it with: ${stop}`,
    );
    return 0;
  }
  if (r && !r.ready) {
    print(`bpfpilot: the background daemon could not start: ${r.error}`);
    return 1;
  }
  if (outcome.timedOut) {
    try {
      Deno.kill(child.pid, "SIGTERM");
    } catch {
      // already gone
    }
    print(
      `bpfpilot: the background daemon did not report ready within ` +
        `${Math.round((opts.timeoutMs ?? READY_TIMEOUT_MS) / 1000)} s, so it was stopped; ` +
        "run without -D (with -s) to see where it hangs",
    );
    return 1;
  }
  print(
    `bpfpilot: the background daemon exited during start-up` +
      (outcome.exitStatus === null ? "" : ` (status ${outcome.exitStatus})`) +
      " without saying why; run it without -D, with -s, to see its messages",
  );
  return 1;
}
