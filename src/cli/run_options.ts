/**
 * The daemon's options as commander declares them: the single definition behind `run`'s flags,
 * the root command's bpftune-style flags, the man page and completions, and the configuration
 * file's keys (src/config/options.ts derives the file's schema from it).
 */
import { Command, Option } from "@commander-js/extra-typings";
import { DEFAULT_STATE_DIR } from "../daemon/journal.ts";
import { ATTACH_KINDS } from "../kernel/hooks.ts";
import { DEFAULT_CONTROL_SOCKET } from "../daemon/control/socket_file.ts";
import { OVERRIDE_LIFETIMES } from "../daemon/override_lifetime.ts";
import { LOG_TARGETS } from "../log/logger.ts";
import { DEFAULT_LEARNING_RATE } from "../tuning/learning_rate.ts";
import { DEFAULT_COOLDOWN_MS } from "../daemon/rate_gate.ts";
import { METRICS_NETNS } from "../daemon/metrics.ts";

/** Where the daemon looks for its configuration file when --config does not name one. */
export const DEFAULT_CONFIG_FILE = "/etc/bpfpilot/bpfpilot.conf";

export interface RunFlags {
  stderr?: boolean;
  log?: string;
  debug?: boolean;
  learningRate?: string;
  rollback?: boolean;
  allow?: string[];
  disable?: string[];
  cgroup?: string;
  legacy?: boolean;
  daemon?: boolean;
  advise?: boolean;
  logFormat?: string;
  stateDir?: string;
  cooldown?: string;
  netns?: string;
  /** A path, or false for --no-control-socket. */
  controlSocket?: string | false;
  controlGroup?: string;
  metricsListen?: string;
  metricsAllowRemote?: boolean;
  metricsNetns?: string;
  prefer?: string;
  overrides?: string;
  tuneAbovePinned?: boolean;
  /** bpftune's spellings: accepted so its units and scripts start (see bpftuneNotices). */
  learning_rate?: string;
  libdir?: string;
  port?: string;
  allowDegraded?: boolean;
  keepCapabilities?: boolean;
  /** The configuration file, or false for --no-config (absent: the default file, if any). */
  config?: string | false;
}

/**
 * What an unset value flag means, for --help and the example configuration (`bpfpilot config
 * example`): the default the daemon applies itself (no commander default, so that an unset flag
 * stays unset and the configuration file can set it), or, for a flag that is off unless given,
 * an example value. Every value flag without a commander default has an entry
 * (test/unit/config_example_test.ts).
 */
export const UNSET_FLAGS: Readonly<
  Record<string, { default: string | number } | { example: string | string[] }>
> = {
  learningRate: { default: DEFAULT_LEARNING_RATE },
  cooldown: { default: DEFAULT_COOLDOWN_MS / 1000 },
  stateDir: { default: DEFAULT_STATE_DIR },
  controlSocket: { default: DEFAULT_CONTROL_SOCKET },
  allow: { example: ["tcp_buffer"] },
  disable: { example: ["route_table"] },
  cgroup: { example: "/sys/fs/cgroup" },
  prefer: { example: "tracepoint" },
  netns: { example: "blue" },
  controlGroup: { example: "adm" },
  metricsListen: { example: "127.0.0.1:9101" },
};

/** A repeatable option's parser: each use adds one value. */
export const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The daemon's options, added to a command (the root and `run` share them). */
export function addRunOptions<C extends Command<unknown[], Record<string, unknown>>>(cmd: C) {
  return cmd
    .option(
      "--config <file>",
      `read settings from this TOML file instead of ${DEFAULT_CONFIG_FILE} (flags override it)`,
    )
    .option("--no-config", `read no configuration file (not even ${DEFAULT_CONFIG_FILE})`)
    .option("-s, --stderr", "log to stderr (prefix 'bpfpilot: ') instead of the journal/syslog")
    .addOption(
      new Option(
        "--log <target>",
        "where to log: auto (the journal when systemd connected stderr to it, else syslog), " +
          "journal (journald's native socket, with fields), syslog, or stderr (as -s, which wins)",
      ).choices(LOG_TARGETS).default("auto"),
    )
    .option("-d, --debug", "also log debug lines, libbpf's included")
    .option(
      "-r, --learning-rate <0-4>",
      "act when a value is within 1/64, 1/32, 1/16, 1/8 or 1/4 of its limit, and grow by as " +
        `much (default ${DEFAULT_LEARNING_RATE})`,
    )
    .option("--learning_rate <0-4>", "bpftune's spelling of --learning-rate")
    .option("-R, --rollback", "on exit, restore every value bpfpilot changed")
    .option(
      "-a, --allow <tuner>",
      "run only this tuner (repeatable; tcp_buffer_tuner.so works)",
      collect,
    )
    .option("--disable <tuner>", "do not run this tuner (repeatable)", collect)
    .option("-c, --cgroup <dir>", "cgroup v2 directory cgroup programs attach to (default: root)")
    .option(
      "--allow-degraded",
      "start even when admin-override detection or a tuner named with -a cannot load",
    )
    .option("-L, --legacy", "prefer each hook's fallback attach kinds")
    .option(
      "--keep-capabilities",
      "keep every capability root has (debugging); by default the daemon keeps only those " +
        "tuning needs",
    )
    .addOption(
      new Option("--prefer <kind>", "try this attach kind first on every hook (testing)")
        .choices(ATTACH_KINDS),
    )
    .option(
      "-D, --daemon",
      "run in the background; returns once the daemon runs (exit 0, pid file bpfpilot.pid in " +
        "/run/bpfpilot or the --state-dir) or with its start error (exit 1); with -s it keeps " +
        "logging to this stderr",
    )
    .option("--advise", "observe and log proposals only; never write a sysctl")
    .option(
      "--tune-above-pinned",
      "let bpfpilot raise a sysctl that a boot-time sysctl.d file sets (never below that value); " +
        "by default such sysctls are the administrator's and left alone",
    )
    .addOption(
      new Option(
        "--overrides <lifetime>",
        "how long an admin's write to a tuned sysctl holds bpfpilot off it: persistent (until " +
          "'bpfpilot enable', across restarts) or session (until bpfpilot stops, as bpftune)",
      ).choices(OVERRIDE_LIFETIMES).default("persistent"),
    )
    .addOption(
      new Option("--log-format <format>", "log line format").choices(["text", "json"]).default(
        "text",
      ),
    )
    .option("--state-dir <dir>", `journal and state directory (default ${DEFAULT_STATE_DIR})`)
    .option(
      "--cooldown <seconds>",
      "minimum time between two changes of one sysctl that reverse direction " +
        `(default ${DEFAULT_COOLDOWN_MS / 1000})`,
    )
    .option(
      "--netns <name|path>",
      "tune only this network namespace (a name under /run/netns or a path such as " +
        "/proc/PID/ns/net); host-wide sysctls like tcp_mem are still tuned",
    )
    .option(
      "--control-socket <path>",
      `UNIX socket for 'bpfpilot query' (default ${DEFAULT_CONTROL_SOCKET}; with another ` +
        "--state-dir, <state-dir>/control.sock)",
    )
    .option("--no-control-socket", "do not open the control socket")
    .option("--control-group <group>", "let this group use the control socket too (mode 0660)")
    .option(
      "--metrics-listen <addr>",
      "serve OpenMetrics at http://ADDR/metrics, e.g. 127.0.0.1:9101 (loopback only)",
    )
    .option(
      "--metrics-allow-remote",
      "allow a non-loopback --metrics-listen address (no authentication: firewall it)",
    )
    .addOption(
      new Option(
        "--metrics-netns <which>",
        "tunables metrics show outside the host's namespace: changed (only the sysctls bpfpilot " +
          "changed there) or all (every tunable of every namespace it knows: more series and " +
          "one /proc/sys read per tunable and namespace per scrape)",
      ).choices(METRICS_NETNS).default("changed"),
    )
    .option(
      "-l, --libdir <dir>",
      "bpftune's plugin directory: accepted and ignored (bpfpilot's tuners are built in)",
    )
    .option(
      "-p, --port <port>",
      "bpftune's query TCP port: accepted and ignored (queries use the UNIX control socket)",
    );
}
