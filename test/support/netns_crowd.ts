/**
 * Many namespaces of the caller's own (netns_crowd.py: one process, one `ip -batch`, no fork per
 * namespace), for the namespace-scale test and bench. Delete only what you added: `remove()`.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { netnsInumOf } from "../../src/kernel/netns.ts";

const SCRIPT = join(new URL(".", import.meta.url).pathname, "netns_crowd.py");

export interface FlowResult {
  flows: number;
  failed: number;
  ms: number;
  /**
   * flows(): per flow, in order, the largest send buffer its sender saw (SO_SNDBUF) and how many
   * of its sends waited on a full buffer near the max (3/4 of tcp_wmem's).
   */
  senders?: [number, number][];
}

export class NetnsCrowd {
  private constructor(readonly prefix: string, readonly size: number) {}

  static create(tag: string, size: number): NetnsCrowd {
    const crowd = new NetnsCrowd(`bpfp-c-${tag}-${Deno.pid}`, size);
    try {
      crowd.#run(["add"]);
    } catch (e) {
      crowd.remove();
      throw e;
    }
    return crowd;
  }

  #run(args: string[], timeoutMs = 300_000): string {
    return execFileSync(
      "python3",
      [SCRIPT, args[0], this.prefix, `${this.size}`, ...args.slice(1)],
      { encoding: "utf8", timeout: timeoutMs },
    );
  }

  name(i: number): string {
    return `${this.prefix}-${i}`;
  }

  /** Inode number of every namespace, in order. */
  inodes(): bigint[] {
    return Array.from({ length: this.size }, (_, i) => netnsInumOf(`/run/netns/${this.name(i)}`));
  }

  /**
   * One loopback flow of `bytes` in each namespace; `rmem` ("min default max") set first.
   * `stallMs`: the receiver pauses that long after every 2 MiB, so the sender's buffer surely
   * fills at its max (netns_crowd.py); 0 reads as fast as it can.
   */
  flows(bytes: number, rmem?: string, stallMs = 0): FlowResult {
    const stall = stallMs > 0 ? [rmem ?? "-", `${stallMs}`] : rmem ? [rmem] : [];
    return JSON.parse(this.#run(["flows", `${bytes}`, ...stall]));
  }

  /**
   * Flows round-robin over the namespaces for `seconds`, in the background; `via` wraps the
   * command line (e.g. to start it inside a cgroup).
   */
  loop(
    bytes: number,
    seconds: number,
    via: (argv: string[]) => string[] = (argv) => argv,
  ): Deno.ChildProcess {
    const [cmd, ...args] = via(
      ["python3", SCRIPT, "loop", this.prefix, `${this.size}`, `${bytes}`, `${seconds}`],
    );
    return new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "null",
    }).spawn();
  }

  remove(): void {
    this.#run(["del"]);
  }
}
