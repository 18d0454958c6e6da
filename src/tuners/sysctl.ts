/**
 * The sysctl tuner: admin-override detection. A cgroup/sysctl program reports every sysctl write
 * by another process; when the sysctl is one a tuner manages, that sysctl is no longer touched in
 * that namespace (persisted in the journal until `bpfpilot enable`). Exact name matching: bpftune
 * matched a substring of the last two path components and could hit unrelated sysctls.
 */
import { canonicalSysctlName } from "../kernel/sysctl.ts";
import { describeNetns, netnsKey } from "../kernel/netns.ts";
import type { TunerDefinition } from "../daemon/tuner.ts";
import { SYSCTL_HOOKS } from "./sysctl_hooks.ts";

/** Event kind of bpf/sysctl.bpf.c. */
const SY_WRITE = 1;

/** The first word of a process's command line, or null once it has exited. */
export function commandOf(pid: number): string | null {
  try {
    const raw = Deno.readTextFileSync(`/proc/${pid}/cmdline`);
    const first = raw.split("\0")[0];
    return first ? first : null;
  } catch {
    return null;
  }
}

export interface OverrideSink {
  /** Tuners that manage `sysctl` (dotted), in load order. */
  managers(sysctl: string): string[];
  /** Persist and apply the override. */
  override(o: { netns: string; sysctl: string; tuner: string; pid: number; comm: string }): void;
}

export function sysctlTuner(sink: OverrideSink): TunerDefinition {
  return {
    name: "sysctl",
    id: 1,
    description: "detects sysctl writes by the administrator and stops tuning those sysctls",
    object: "sysctl",
    tunables: [],
    scenarios: [],
    hooks: SYSCTL_HOOKS,
    create(ctx) {
      return {
        configure(obj) {
          // Ignore our own writes: the program compares the writer's tgid with param[0].
          const cfg = new Uint8Array(64);
          new DataView(cfg.buffer).setBigUint64(16, BigInt(Deno.pid), true);
          obj.map("bpfp_config").update(new Uint8Array(4), cfg);
        },
        onEvent(ev) {
          if (ev.kind !== SY_WRITE || !ev.text) return;
          let sysctl: string;
          try {
            sysctl = canonicalSysctlName(ev.text);
          } catch {
            return;
          }
          const netns = netnsKey(ev.netns);
          const tuners = sink.managers(sysctl);
          if (tuners.length === 0) {
            ctx.log.debug(`sysctl ${sysctl} written by pid ${ev.pid} (${ev.comm}); not managed`);
            return;
          }
          const cmd = commandOf(ev.pid) ?? ev.comm;
          for (const tuner of tuners) {
            ctx.log.notice(
              `pid ${ev.pid}, cmd '${cmd}' modified sysctl '${sysctl}' that tuner '${tuner}' ` +
                `uses; no longer tuning '${sysctl}' in ${describeNetns(netns)} ` +
                `(run 'bpfpilot enable ${sysctl}' to resume)`,
              { tuner, sysctl, netns, pid: ev.pid, comm: cmd },
            );
            sink.override({ netns, sysctl, tuner, pid: ev.pid, comm: cmd });
          }
        },
      };
    },
  };
}
