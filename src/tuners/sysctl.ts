/**
 * The sysctl tuner: admin-override detection. A cgroup/sysctl program reports writes to the
 * sysctls tuners manage (this tuner fills the program's name map) by a privileged writer (root or
 * CAP_NET_ADMIN in the initial user namespace), folded per (namespace, sysctl); that sysctl is no
 * longer touched in that namespace (persisted in the journal until `bpfpilot enable`). Exact name
 * matching: bpftune matched a substring of the last two path components and could hit unrelated
 * sysctls.
 */
import { canonicalSysctlName } from "../kernel/sysctl.ts";
import { ANY_NETNS, describeNetns, netnsInumOf, netnsKey } from "../kernel/netns.ts";
import type { TunerDefinition } from "../tuning/tuner.ts";
import sysctlObject from "../../dist/bpf/sysctl.bpf.o" with { type: "bytes" };
import { contract } from "../../dist/bpf/sysctl.contract.ts";
import { configBytes, readPayload } from "../tuning/contract.ts";
import { u32Key } from "../libbpf/map.ts";

/** The kernel could not name the writer: the event carries the name and new value instead. */
const SY_FLAG_NO_WRITER = 1;

/** Key of the program's managed-name map: the name relative to /proc/sys, NUL-padded. */
export const SY_NAME_LEN = 64;
export function managedNameKey(sysctl: string): Uint8Array | null {
  const bytes = new TextEncoder().encode(sysctl.replaceAll(".", "/"));
  if (bytes.length >= SY_NAME_LEN) return null;
  const key = new Uint8Array(SY_NAME_LEN);
  key.set(bytes);
  return key;
}

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

/** The writer's namespace inode when the program could not report it (0 if it has exited). */
function writerNetns(pid: number): bigint {
  try {
    return netnsInumOf(`/proc/${pid}/ns/net`);
  } catch {
    return 0n;
  }
}

export const sysctlTuner: TunerDefinition = {
  name: "sysctl",
  id: contract.id,
  description: "detects sysctl writes by the administrator and stops tuning those sysctls",
  alwaysOn: true,
  object: sysctlObject,
  contract,
  tunables: [],
  scenarios: [],
  hooks: [{
    name: "sysctl_write",
    description: "sysctl writes by other processes (admin override detection)",
    candidates: [
      { kind: "cgroup", target: "sysctl", program: "bpfp_sy_write" },
      // Where cgroup programs cannot read the current task (5.10): namespace looked up by pid.
      { kind: "cgroup", target: "sysctl", program: "bpfp_sy_write_nt" },
    ],
  }],
  create(ctx) {
    return {
      configure(obj) {
        // Ignore our own writes: the program compares the writer's tgid with own_tgid.
        obj.map("bpfp_config").update(u32Key(0), configBytes(contract, { own_tgid: Deno.pid }));
        // Only writes to these reach userspace; the index keys the per-sysctl folding.
        const managed = obj.map("bpfp_sy_managed");
        (ctx.managedSysctls?.() ?? []).forEach((sysctl, i) => {
          const key = managedNameKey(sysctl);
          if (key) managed.update(key, u32Key(i + 1));
        });
      },
      onEvent(ev) {
        if (ev.kind !== contract.kinds.SY_WRITE) return;
        const noWriter = (ev.flags & SY_FLAG_NO_WRITER) !== 0;
        const payload = noWriter
          ? readPayload(ev.data, contract.payload.no_writer)
          : { ...readPayload(ev.data, contract.payload.write), value: "" };
        let sysctl: string;
        try {
          sysctl = canonicalSysctlName(payload.name);
        } catch {
          return;
        }
        // Unknown namespace (old kernel, writer already gone): back off everywhere.
        const inum = ev.netns || writerNetns(ev.pid);
        const netns = inum ? netnsKey(inum) : ANY_NETNS;
        if (noWriter && ctx.isOwnRecentWrite(sysctl, payload.value)) return;
        const tuners = ctx.managers(sysctl);
        if (tuners.length === 0) {
          if (ctx.log.debugEnabled) {
            ctx.log.debug(`sysctl ${sysctl} written by pid ${ev.pid} (${ev.comm}); not managed`);
          }
          return;
        }
        const cmd = noWriter
          ? "unknown (this kernel does not name sysctl writers)"
          : commandOf(ev.pid) ?? ev.comm;
        for (const tuner of tuners) {
          ctx.log.notice(
            `pid ${ev.pid}, cmd '${cmd}' modified sysctl '${sysctl}' that tuner '${tuner}' ` +
              `uses; no longer tuning '${sysctl}' in ${describeNetns(netns)} ` +
              `(run 'bpfpilot enable ${sysctl}' to resume)`,
            { event: "override_detected", tuner, sysctl, netns, pid: ev.pid, comm: cmd },
          );
          ctx.markOverride({ netns, sysctl, tuner, pid: ev.pid, comm: cmd });
        }
      },
    };
  },
};
