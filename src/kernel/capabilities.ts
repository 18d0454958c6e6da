/**
 * The capabilities the daemon keeps, and reading a process's capability sets from
 * /proc/<pid>/status. What tuning needs was measured by running the daemon's tests with each
 * capability taken away (see README, Security model).
 */

export interface KeptCapability {
  name: string;
  bit: number;
  why: string;
}

/** Everything else is dropped from the bounding set of every thread. */
export const KEPT_CAPABILITIES: readonly KeptCapability[] = [
  { name: "CAP_BPF", bit: 39, why: "load BPF programs and BTF, create and read maps" },
  { name: "CAP_PERFMON", bit: 38, why: "tracing programs and the perf events that attach them" },
  {
    name: "CAP_NET_ADMIN",
    bit: 12,
    why: "cgroup and sockops programs; per-namespace net sysctls; congestion control",
  },
  {
    name: "CAP_SYS_ADMIN",
    bit: 21,
    why: "setns into other network namespaces; mount cgroup2 on an empty -c directory",
  },
  {
    name: "CAP_SYS_PTRACE",
    bit: 19,
    why: "open /proc/<pid>/ns/net of other users' processes (their namespaces)",
  },
  {
    name: "CAP_DAC_OVERRIDE",
    bit: 1,
    why: "the probe's child cgroup under the cgroup2 root (mode 0555); namespace files in " +
      "rootless runtimes' private directories",
  },
];

/** Kept only when the flags need them: the control socket's group, a privileged metrics port. */
export const CAP_CHOWN: KeptCapability = {
  name: "CAP_CHOWN",
  bit: 0,
  why: "give the control socket to --control-group",
};
export const CAP_NET_BIND_SERVICE: KeptCapability = {
  name: "CAP_NET_BIND_SERVICE",
  bit: 10,
  why: "--metrics-listen on a port below 1024",
};

/** The kept set (plus what the flags need) as a mask of capability bits. */
export function keptMask(extra: readonly KeptCapability[] = []): bigint {
  return [...KEPT_CAPABILITIES, ...extra].reduce((mask, cap) => mask | (1n << BigInt(cap.bit)), 0n);
}

export interface CapabilitySets {
  inheritable: bigint;
  permitted: bigint;
  effective: bigint;
  bounding: bigint;
  ambient: bigint;
}

const FIELDS: Record<string, keyof CapabilitySets> = {
  CapInh: "inheritable",
  CapPrm: "permitted",
  CapEff: "effective",
  CapBnd: "bounding",
  CapAmb: "ambient",
};

/** Parses the Cap* lines of a /proc/<pid>/status (or task/<tid>/status) text. */
export function parseCapabilities(status: string): CapabilitySets {
  const sets: CapabilitySets = {
    inheritable: 0n,
    permitted: 0n,
    effective: 0n,
    bounding: 0n,
    ambient: 0n,
  };
  for (const line of status.split("\n")) {
    const m = /^(Cap\w+):\s*([0-9a-f]+)$/.exec(line);
    const field = m ? FIELDS[m[1]] : undefined;
    if (m && field) sets[field] = BigInt(`0x${m[2]}`);
  }
  return sets;
}

/** Names of the capabilities in a mask ("cap_40" for one this table does not name). */
export function capabilityNames(mask: bigint): string[] {
  const names: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if (!(mask & (1n << BigInt(bit)))) continue;
    const known = [...KEPT_CAPABILITIES, CAP_CHOWN, CAP_NET_BIND_SERVICE].find((c) =>
      c.bit === bit
    );
    names.push(known?.name ?? `cap_${bit}`);
  }
  return names;
}
