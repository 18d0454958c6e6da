/**
 * `bpfpilot run` and bpftune's flags: the daemon's command line. The same options work on the
 * root command, so `bpfpilot -dsR` behaves like `bpftune -dsR` in existing units and scripts.
 */
import { Command } from "@commander-js/extra-typings";
import { addRunOptions, type RunFlags } from "./run_options.ts";
import { dirname } from "../path.ts";
import { Daemon, DaemonStartError } from "../daemon/daemon.ts";
import { DEFAULT_STATE_DIR, JournalError } from "../daemon/journal.ts";
import { DEFAULT_LEARNING_RATE, parseLearningRate } from "../tuning/learning_rate.ts";
import { createLogger, type Logger, type LogTarget } from "../log/logger.ts";
import { normalizeTunerName } from "../tuning/names.ts";
import { TUNERS } from "../tuners/registry.ts";
import { CgroupDirError, mountCgroup2 } from "../kernel/cgroup_dir.ts";
import type { OwnMount } from "../kernel/own_mount.ts";
import type { AttachKind } from "../kernel/hooks.ts";
import { requireRoot, UserError } from "./errors.ts";
import { checkPathArg, parseCooldown, resolveCgroup, resolveNetns } from "./run_paths.ts";
import {
  ControlSocketError,
  DEFAULT_CONTROL_SOCKET,
  resolveGroup,
} from "../daemon/control/socket_file.ts";
import { MetricsListenError, type MetricsNetns, parseListenAddress } from "../daemon/metrics.ts";
import { startInBackground } from "./background.ts";
import type { OverrideLifetime } from "../daemon/override_lifetime.ts";
import { readinessChannel } from "./readiness.ts";
import { type CapabilityOutcome, dropCapabilities } from "../kernel/cap_drop.ts";
import { CAP_CHOWN, CAP_NET_BIND_SERVICE, type KeptCapability } from "../kernel/capabilities.ts";
import { removePidFile, writePidFile } from "./pid_file.ts";
import { ConfigFileError, type LoadedConfig } from "../config/file.ts";
import {
  ConfigInvalidError,
  type FlagSource,
  mergeSettings,
  selectConfig,
} from "../config/effective.ts";
import { describeConfig, policyRules, reloadConfig } from "../config/reload.ts";
import { ConfigPolicy, startTimePolicy } from "../daemon/config_policy.ts";

export const RUN_DIR = "/run/bpfpilot";
export { addRunOptions, type RunFlags } from "./run_options.ts";

/** One line each for bpftune flags that mean nothing to bpfpilot (they are accepted). */
export function bpftuneNotices(flags: Pick<RunFlags, "libdir" | "port">): string[] {
  const out: string[] = [];
  if (flags.libdir !== undefined) {
    out.push(
      `-l/--libdir ${flags.libdir} ignored: bpfpilot's tuners are built in (bpfpilot -P lists ` +
        "them)",
    );
  }
  if (flags.port !== undefined) {
    out.push(
      `-p/--port ${flags.port} ignored: bpfpilot answers queries on a UNIX socket, not TCP ` +
        "(see --control-socket)",
    );
  }
  return out;
}

/**
 * The control socket a daemon with these flags uses, or null for none. A daemon with its own
 * state directory gets its own socket there, so two daemons never fight over the default one.
 */
export function controlSocketPath(flags: Pick<RunFlags, "controlSocket" | "stateDir">) {
  if (flags.controlSocket === false) return null;
  if (flags.controlSocket !== undefined) return flags.controlSocket;
  const dir = flags.stateDir?.replace(/\/+$/, "");
  return dir === undefined || dir === DEFAULT_STATE_DIR
    ? DEFAULT_CONTROL_SOCKET
    : `${dir}/control.sock`;
}

export const RUN_HELP = `
Logging: with -s, lines go to stderr; under systemd (or with --log journal) to the journal, each
record with fields to filter on (journalctl BPFPILOT_SYSCTL=net.ipv4.tcp_rmem, MESSAGE_ID=...;
README "Logging to journald"); otherwise to syslog (ident bpfpilot). Each change is two lines:
  Scenario '<scenario>' occurred for tunable '<sysctl>' in global ns. <description>
  Due to <reason> change <sysctl>(min default max) from (a b c) -> (a b d)
On SIGINT/SIGTERM: a summary per tuner, then rollback if -R, then exit 0. Changes stay after
the daemon stops: the summary ends with the undo line ('bpfpilot rollback' restores every value
bpfpilot changed, or the sysctl -w lines printed there); -R restores them on exit instead.

Admin override: when another process writes a sysctl a tuner manages, bpfpilot stops tuning it
(in that network namespace) until 'bpfpilot enable <sysctl|tuner>'.

Configuration file: /etc/bpfpilot/bpfpilot.conf (TOML; --config FILE, --no-config) sets any of
these options by its long name (learning-rate = 2, disable = ["route_table"]) plus per-tuner and
per-sysctl policy ([tuner.NAME] or [sysctl."NAME"]: policy = "disabled" | "advise-only",
ceiling = N or one per field). Flags override it; SIGHUP re-reads it (a broken file is logged and
the running configuration kept); 'bpfpilot config check' validates it.

Boot-time values: a sysctl a sysctl.d file (or /etc/sysctl.conf) sets is the administrator's and
is not tuned in the host's namespace (--tune-above-pinned: only raised). SIGHUP re-reads them.

Exit status: 0 stopped by a signal, 1 could not start (not root, libbpf missing, no tuner could
run, another daemon running, corrupt state file), 2 usage error.

Examples:
  bpfpilot run --stderr                 tune, log to the terminal
  bpfpilot -dsR                         as bpftune -dsR: debug, stderr, roll back on exit
  bpfpilot run --advise -s -r 2         only say what would change, act at 1/16 of a limit
Test switch: BPFPILOT_FAULT_INJECT, comma-separated: <tuner>:load, <tuner>:<hook> or
program:<name> forces that tuner's load, that hook's attach or that program's load to fail (the
daemon carries on without it, or falls back along the hook's chain); start:<step> fails start-up
after <step> (journal, probe, tuners, ringbuf, servers), which must release what it acquired;
sysctl:<name> makes that sysctl read as absent (as net.ipv6.* is with IPv6 disabled);
tcp_buffer:memory-pressure makes TCP memory read as near pressure.`;

/** Where the daemon logs: -s (or `stderr = true`) is --log stderr, and wins over a --log. */
export function logTarget(flags: Pick<RunFlags, "stderr" | "log">): LogTarget {
  return flags.stderr ? "stderr" : (flags.log ?? "auto") as LogTarget;
}

function makeLogger(flags: RunFlags): Logger {
  return createLogger({
    target: logTarget(flags),
    format: flags.logFormat === "json" ? "json" : "text",
    debug: flags.debug ?? false,
    textFields: flags.debug ?? false,
  });
}

/** Where a daemon with these flags keeps its runtime files (pid file, probe cache). */
export function runtimeDir(flags: Pick<RunFlags, "stateDir">): string {
  const dir = flags.stateDir?.replace(/\/+$/, "");
  return dir === undefined || dir === DEFAULT_STATE_DIR ? RUN_DIR : dir;
}

/** The configuration file the flags select, checked (null: none); a problem is a start error. */
function startConfig(flags: RunFlags): LoadedConfig | null {
  try {
    return selectConfig(flags, TUNERS);
  } catch (e) {
    if (e instanceof ConfigFileError || e instanceof ConfigInvalidError) {
      throw new UserError(e.message);
    }
    throw e;
  }
}

/**
 * Runs the daemon with `given` flags over the configuration file's settings; `sourceOf` tells
 * which flags the command line set (commander's value sources).
 */
export async function runDaemon(
  given: RunFlags,
  sourceOf: FlagSource = () => undefined,
): Promise<number> {
  requireRoot("bpfpilot run");
  // bpftune's --learning_rate is --learning-rate given on the command line.
  const bpftuneRate = given.learning_rate !== undefined && given.learningRate === undefined;
  if (bpftuneRate) given = { ...given, learningRate: given.learning_rate };
  const flagSource: FlagSource = (a) => a === "learningRate" && bpftuneRate ? "cli" : sourceOf(a);
  const config = startConfig(given);
  const flags = mergeSettings(given, flagSource, config).flags;
  let learningRate;
  try {
    learningRate = parseLearningRate(
      flags.learningRate ?? flags.learning_rate ?? DEFAULT_LEARNING_RATE,
    );
  } catch (e) {
    throw new UserError((e as Error).message, 2);
  }
  const cooldownMs = parseCooldown(flags.cooldown);
  const onlyNetns = flags.netns === undefined ? null : resolveNetns(flags.netns);
  const cgroup = flags.cgroup === undefined ? null : resolveCgroup(flags.cgroup);
  if (flags.stateDir !== undefined) checkPathArg("--state-dir", flags.stateDir);
  if (typeof flags.controlSocket === "string") {
    checkPathArg("--control-socket", flags.controlSocket);
  }
  const controlSocket = controlSocketPath(flags);
  if (controlSocket === null && flags.controlGroup !== undefined) {
    throw new UserError("--control-group needs the control socket; drop --no-control-socket", 2);
  }
  if (flags.controlGroup !== undefined) {
    try {
      await resolveGroup(flags.controlGroup); // before any BPF is loaded
    } catch (e) {
      if (e instanceof ControlSocketError) throw new UserError(e.message, 2);
      throw e;
    }
  }
  const flagCapabilities: KeptCapability[] = [];
  if (flags.controlGroup !== undefined) flagCapabilities.push(CAP_CHOWN);
  if (flags.metricsListen !== undefined) {
    try {
      const { port } = parseListenAddress(flags.metricsListen, {
        allowNonLoopback: flags.metricsAllowRemote,
      });
      if (port > 0 && port < 1024) flagCapabilities.push(CAP_NET_BIND_SERVICE);
    } catch (e) {
      if (e instanceof MetricsListenError) {
        throw new UserError(
          `--metrics-listen: ${e.message}` +
            (/non-loopback/.test(e.message) ? " (--metrics-allow-remote)" : ""),
          2,
        );
      }
      throw e;
    }
  }
  if (flags.daemon) {
    return await startInBackground(Deno.args, { keepStdio: logTarget(flags) === "stderr" });
  }
  // Before anything is loaded or opened: as root this re-executes the program with fewer
  // capabilities (same pid, fds and arguments) and does not return.
  const capabilities: CapabilityOutcome = flags.keepCapabilities
    ? { kind: "kept-all", reason: "--keep-capabilities" }
    : dropCapabilities(flagCapabilities);
  const readiness = readinessChannel();
  const log = makeLogger(flags);
  for (const notice of bpftuneNotices(flags)) log.notice(notice);
  log.info(
    capabilities.kind === "bounded"
      ? `capabilities: kept only ${capabilities.kept.join(" ")}`
      : `capabilities: all of root's kept (${capabilities.reason})`,
  );
  log.info(
    describeConfig(config, given.config === false ? "--no-config" : "none at the default path"),
  );
  const policy = new ConfigPolicy(policyRules(config));
  const atStart = startTimePolicy(config, TUNERS);
  // The probe cache (valid for one boot) lives with the runtime files of a standard daemon, or in
  // the state directory of one given its own, so such a daemon leaves nothing elsewhere.
  const probeCache = flags.stateDir
    ? `${flags.stateDir}/probe-cache.json`
    : `${RUN_DIR}/probe-cache.json`;
  try {
    Deno.mkdirSync(dirname(probeCache), { recursive: true, mode: flags.stateDir ? 0o700 : 0o755 });
  } catch {
    // the probe cache is an optimisation
  }
  const daemon = new Daemon({
    log,
    tuners: TUNERS,
    advise: flags.advise ?? false,
    learningRate,
    rollbackOnExit: flags.rollback ?? false,
    allow: flags.allow?.length ? flags.allow.map(normalizeTunerName) : null,
    disable: [...(flags.disable ?? []).map(normalizeTunerName), ...atStart.disabled],
    adviseTuners: atStart.advising,
    cgroup: cgroup?.path ?? null,
    allowDegraded: flags.allowDegraded ?? false,
    legacy: flags.legacy ?? false,
    prefer: (flags.prefer as AttachKind | undefined) ?? null,
    stateDir: flags.stateDir ?? DEFAULT_STATE_DIR,
    cooldownMs,
    onlyNetns,
    probeCache,
    faultInject: (Deno.env.get("BPFPILOT_FAULT_INJECT") ?? "").split(",").map((s) => s.trim())
      .filter(Boolean),
    controlSocket,
    controlGroup: flags.controlGroup,
    metricsListen: flags.metricsListen ?? null,
    metricsAllowRemote: flags.metricsAllowRemote ?? false,
    metricsNetns: (flags.metricsNetns as MetricsNetns | undefined) ?? "changed",
    overrides: (flags.overrides as OverrideLifetime | undefined) ?? "persistent",
    tuneAbovePinned: flags.tuneAbovePinned ?? false,
    // Test switch: read sysctl.d under this directory instead of /.
    bootSysctls: { root: Deno.env.get("BPFPILOT_SYSCTL_D_ROOT") ?? "" },
    policy,
    onReload: () =>
      reloadConfig({
        given,
        sourceOf: flagSource,
        running: flags,
        policy,
        startRules: config,
        log,
        catalogue: TUNERS,
      }),
    onReady: (d) => {
      if (!readiness) return;
      try {
        Deno.mkdirSync(runtimeDir(flags), { recursive: true, mode: 0o755 });
        pidFile = writePidFile(runtimeDir(flags));
      } catch (e) {
        log.warn(`cannot write the pid file in ${runtimeDir(flags)}: ${(e as Error).message}`);
      }
      d.pidFile = pidFile;
      readiness.report({ ready: true, pid: Deno.pid, pidFile });
    },
  });
  let pidFile: string | null = null;
  let cgroupMount: OwnMount | null = null;
  try {
    if (cgroup?.mount) {
      try {
        cgroupMount = mountCgroup2(cgroup.path);
      } catch (e) {
        if (e instanceof CgroupDirError) throw new UserError(e.message);
        throw e;
      }
      log.info(`mounted cgroup2 on ${cgroup.path} (-c)`);
    }
    return await daemon.run();
  } catch (e) {
    if (e instanceof DaemonStartError || e instanceof JournalError) {
      // On stderr the CLI prints it anyway; elsewhere it must reach the journal/syslog too.
      if (log.target !== "stderr") log.error(e.message);
      throw new UserError(e.message);
    }
    throw e;
  } finally {
    if (pidFile) removePidFile(pidFile);
    // After the daemon detached its programs: only the mount it made itself.
    cgroupMount?.release();
    log.close();
  }
}

export function runCommand(setExit: (code: number) => void) {
  const cmd = addRunOptions(
    new Command("run").description(
      "run the tuning daemon: watch the kernel with BPF, change sysctls when limits get in the " +
        "way, log each change and why",
    ),
  ).addHelpText("after", RUN_HELP);
  cmd.action(async () =>
    setExit(await runDaemon(cmd.opts() as RunFlags, (a) => cmd.getOptionValueSource(a)))
  );
  return cmd;
}
