/**
 * Reading bpfpilot.conf as a root daemon: the settings steer what root writes into the kernel, so
 * only a file no other account can have written is read. The file must be a regular file (a
 * symbolic link is refused, as O_NOFOLLOW would), owned by root (or the reading user), not
 * writable by group or others, in a directory chain only root can change (trusted_path.ts), and
 * at most MAX_CONFIG_BYTES.
 */
import { dirname } from "../path.ts";
import { readRegularFile, SafeFileError } from "../kernel/safe_file.ts";
import { checkTrustedDir, UntrustedPathError } from "../kernel/trusted_path.ts";
import { MAX_CONFIG_BYTES, parseConfig, type ParsedConfig, type TunerCatalogue } from "./parse.ts";

export class ConfigFileError extends Error {
  constructor(message: string, readonly missing = false) {
    super(message);
    this.name = "ConfigFileError";
  }
}

export interface LoadedConfig extends ParsedConfig {
  path: string;
}

/** The text of the configuration file at `path`; throws ConfigFileError naming cause and fix. */
export function readConfigText(path: string, self: number = Deno.uid() ?? 0): string {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigFileError(`configuration file ${path} does not exist`, true);
    }
    throw new ConfigFileError(`cannot read configuration file ${path}: ${(e as Error).message}`);
  }
  if (info.isSymlink) {
    throw new ConfigFileError(
      `refusing configuration file ${path}: it is a symbolic link; give the path of the file ` +
        `itself (${safeRealPath(path)})`,
    );
  }
  if (!info.isFile) {
    throw new ConfigFileError(`refusing configuration file ${path}: it is not a regular file`);
  }
  const uid = info.uid ?? -1, mode = info.mode ?? 0;
  if (uid !== 0 && uid !== self) {
    throw new ConfigFileError(
      `refusing configuration file ${path}: it is owned by uid ${uid}, who could steer what ` +
        `bpfpilot writes as root; run: chown root:root ${path}`,
    );
  }
  if (mode & 0o022) {
    throw new ConfigFileError(
      `refusing configuration file ${path}: it is writable by ${
        mode & 0o002 ? "every user" : "its group"
      } (mode ${(mode & 0o7777).toString(8).padStart(4, "0")}), so another account could steer ` +
        `what bpfpilot writes as root; run: chmod go-w ${path}`,
    );
  }
  try {
    checkTrustedDir(Deno.realPathSync(dirname(path)), "configuration directory", undefined, self);
    return readRegularFile(path, MAX_CONFIG_BYTES);
  } catch (e) {
    if (e instanceof UntrustedPathError) throw new ConfigFileError(e.message);
    if (e instanceof SafeFileError) {
      throw new ConfigFileError(`cannot read configuration file ${path}: ${e.message}`);
    }
    throw new ConfigFileError(`cannot read configuration file ${path}: ${(e as Error).message}`);
  }
}

function safeRealPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return "its target is missing";
  }
}

/** Reads and checks the file; its problems are in `.problems` (none: usable). */
export function loadConfig(path: string, catalogue: readonly TunerCatalogue[]): LoadedConfig {
  return { path, ...parseConfig(readConfigText(path), catalogue) };
}

/** "bpfpilot.conf:12: unknown key ..." lines, one per problem. */
export function problemLines(c: Pick<LoadedConfig, "path" | "problems">): string[] {
  return c.problems.map((p) => `${c.path}${p.line === null ? "" : `:${p.line}`}: ${p.message}`);
}
