/**
 * A child cgroup of the cgroup v2 root (never the root cgroup itself), for the tests' and the
 * bench's cgroup programs and the processes they watch. Its members join it through a shell that
 * writes its own pid to cgroup.procs and then execs, so a program is a member from its first
 * instruction. Removal retries while members are still exiting; only the caller's own processes
 * are ever put there, so killing the members first (killMembers) is the caller's to choose.
 */
import { cgroup2Root } from "../../src/kernel/cgroup.ts";

/** What the joining shell runs before exec: its pid into the cgroup named by its $0. */
const JOIN = 'echo $$ > "$0/cgroup.procs" && exec';
/** Removal tries, 100 ms apart (5 s): killed or finished members take a moment to exit. */
const REMOVE_TRIES = 50;
const REMOVE_PAUSE_MS = 100;

export class ChildCgroup {
  readonly path: string;

  /** Creates `<cgroup2 root>/<name>`. */
  constructor(name: string) {
    const root = cgroup2Root();
    if (!root) throw new Error(`no cgroup v2 hierarchy is mounted (for cgroup ${name})`);
    this.path = `${root}/${name}`;
    Deno.mkdirSync(this.path, { recursive: true });
  }

  /** `argv` started inside: the shell moves itself in, then execs it (arguments kept apart). */
  wrap(argv: string[]): string[] {
    return ["sh", "-c", `${JOIN} "$@"`, this.path, ...argv];
  }

  /** A shell command line run inside, the same way (the line is the shell's to parse). */
  wrapShell(command: string): string[] {
    return ["sh", "-c", `${JOIN} ${command}`, this.path];
  }

  /** PIDs in it now (none once it is gone). */
  members(): number[] {
    try {
      return Deno.readTextFileSync(`${this.path}/cgroup.procs`).split("\n").filter(Boolean)
        .map(Number);
    } catch {
      return []; // gone already
    }
  }

  /** SIGKILLs every member: cgroup.kill (5.14+) or else each PID. */
  killMembers(): void {
    if (this.members().length === 0) return;
    try {
      Deno.writeTextFileSync(`${this.path}/cgroup.kill`, "1");
    } catch {
      for (const pid of this.members()) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
    }
  }

  /** Removes it, pausing the thread between tries; false if it is still busy after 5 s. */
  removeSync(): boolean {
    for (let i = 0;; i++) {
      if (this.#tryRemove() === null) return true;
      if (i + 1 >= REMOVE_TRIES) return false;
      // A pause without a subprocess or the event loop (sync callers, e.g. tests' finally blocks).
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, REMOVE_PAUSE_MS);
    }
  }

  /** Removes it, waiting between tries; throws if it is still busy after 5 s. */
  async removeAsync(): Promise<void> {
    for (let i = 0;; i++) {
      const busy = this.#tryRemove();
      if (busy === null) return;
      if (i + 1 >= REMOVE_TRIES) {
        throw new Error(`cgroup ${this.path} still busy after 5 s: ${busy.message}`);
      }
      await new Promise((r) => setTimeout(r, REMOVE_PAUSE_MS));
    }
  }

  /** One try: null once the directory is gone, else why not (members still in it). */
  #tryRemove(): Error | null {
    try {
      Deno.removeSync(this.path);
      return null;
    } catch (e) {
      return e instanceof Deno.errors.NotFound ? null : e as Error;
    }
  }
}
