/**
 * The floor under every per-hit figure: the probe object's empty program attached where a tuner's
 * hot program is (the same tp_btf tracepoint, or a sockops program on the same cgroup), measured
 * over the same window. What it costs is the kernel's dispatch and bpf_stats' own clock reads,
 * which move with the machine's load; a tuner's figure minus this one is what its code adds.
 */
import { BPF_OBJECTS } from "../../src/embedded.ts";
import { BpfObject, type BpfProgram } from "../../src/libbpf/object.ts";
import { bpftoolJson, programIdsOf } from "./bpf_stats.ts";
import { onCleanup } from "./cleanup.ts";

export interface RunStats {
  runNs: number;
  runs: number;
}

export class EmptyProgram {
  private constructor(
    /** The tuner programs' attach target it stands beside (a tracepoint, or "sockops"). */
    readonly target: string,
    /** What it is and where, for the report. */
    readonly what: string,
    private readonly id: number,
    readonly close: () => Promise<void>,
  ) {}

  /** The empty tp_btf program at `tracepoint` until close or the bench's cleanup. */
  static attach(tracepoint: string): EmptyProgram {
    return EmptyProgram.#load(
      "bpfp_pr_tp_btf",
      tracepoint,
      `an empty tp_btf program on ${tracepoint}`,
      (prog) => {
        prog.setAttachTarget(tracepoint);
        return () => prog.attach("tp_btf", tracepoint);
      },
    );
  }

  /** The empty sockops program (returns 1, sets no callback flag) on cgroup directory `cgroup`. */
  static attachSockops(cgroup: string): EmptyProgram {
    return EmptyProgram.#load(
      "bpfp_pr_sockops",
      "sockops",
      `an empty sockops program on the cgroup ${cgroup}`,
      (prog) => () => prog.attach("cgroup", cgroup),
    );
  }

  /** Loads `program` alone from the probe object; `prepare` sets it up and returns its attach. */
  static #load(
    program: string,
    target: string,
    what: string,
    prepare: (prog: BpfProgram) => () => unknown,
  ): EmptyProgram {
    const before = new Set(programIdsOf(Deno.pid));
    const obj = BpfObject.open(BPF_OBJECTS.probe, { name: "bpfp_bench_empty" });
    const close = onCleanup(`detach ${what}`, () => obj.close());
    try {
      for (const p of obj.programs()) p.setAutoload(p.name === program);
      const attach = prepare(obj.program(program));
      obj.load();
      attach(); // the object keeps the link and detaches it on close
    } catch (e) {
      void close();
      throw e;
    }
    const id = programIdsOf(Deno.pid).find((i) => !before.has(i));
    if (id === undefined) {
      void close();
      throw new Error(`${what} loaded but has no program id`);
    }
    return new EmptyProgram(target, what, id, close);
  }

  read(): RunStats {
    const p = bpftoolJson(["prog", "show", "id", `${this.id}`]) as {
      run_time_ns?: number;
      run_cnt?: number;
    };
    return { runNs: p.run_time_ns ?? 0, runs: p.run_cnt ?? 0 };
  }
}
