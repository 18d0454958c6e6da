/** Where the sysctl (admin-override) tuner watches: every sysctl write, via cgroup/sysctl. */
import type { HookDecl } from "../kernel/hooks.ts";

export const SYSCTL_HOOKS: HookDecl[] = [
  {
    name: "sysctl_write",
    description: "sysctl writes by other processes (admin override detection)",
    candidates: [{ kind: "cgroup", target: "sysctl", program: "bpfp_sy_write" }],
  },
];
