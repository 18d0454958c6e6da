/**
 * The floor under every per-hit figure: the probe object's empty tp_btf program attached to the
 * same tracepoint as a tuner's hot program, measured over the same window. What it costs is the
 * kernel's dispatch and bpf_stats' own clock reads, which move with the machine's load; a tuner's
 * figure minus this one is what its code adds.
 */
import { BPF_OBJECTS } from "../../src/embedded.ts";
import { BpfObject } from "../../src/libbpf/object.ts";
import { bpftoolJson, programIdsOf } from "./bpf_stats.ts";
import { onCleanup } from "./cleanup.ts";

export interface RunStats {
  runNs: number;
  runs: number;
}

export class EmptyProgram {
  private constructor(
    readonly tracepoint: string,
    private readonly id: number,
    readonly close: () => Promise<void>,
  ) {}

  /** Loads and attaches the empty program at tp_btf/`tracepoint` until close or the bench's cleanup. */
  static attach(tracepoint: string): EmptyProgram {
    const before = new Set(programIdsOf(Deno.pid));
    const obj = BpfObject.open(BPF_OBJECTS.probe, { name: "bpfp_bench_empty" });
    const close = onCleanup(`detach the empty program on ${tracepoint}`, () => obj.close());
    try {
      for (const p of obj.programs()) p.setAutoload(p.name === "bpfp_pr_tp_btf");
      const prog = obj.program("bpfp_pr_tp_btf");
      prog.setAttachTarget(tracepoint);
      obj.load();
      obj.adoptLink(prog.attach("tp_btf", tracepoint));
    } catch (e) {
      void close();
      throw e;
    }
    const id = programIdsOf(Deno.pid).find((i) => !before.has(i));
    if (id === undefined) {
      void close();
      throw new Error(`the empty program on ${tracepoint} loaded but has no program id`);
    }
    return new EmptyProgram(tracepoint, id, close);
  }

  read(): RunStats {
    const p = bpftoolJson(["prog", "show", "id", `${this.id}`]) as {
      run_time_ns?: number;
      run_cnt?: number;
    };
    return { runNs: p.run_time_ns ?? 0, runs: p.run_cnt ?? 0 };
  }
}
