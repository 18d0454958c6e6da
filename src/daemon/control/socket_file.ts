/**
 * Creates the control socket file safely: never a TCP port, never a moment with loose
 * permissions, never two daemons on one socket, and never deleting someone else's socket.
 *
 * The socket is bound inside a fresh private (0700) directory next to its final place, given its
 * mode and group there, then renamed over the final path. So no client can connect before the
 * permissions are right, and a stale socket from a dead daemon is replaced atomically.
 */
import { dirname } from "../../path.ts";

export const DEFAULT_CONTROL_SOCKET = "/run/bpfpilot/control.sock";

/**
 * Root's own socket beside a group-accessible one (`control.sock` → `control.root.sock`): mode
 * 0600, with slots of its own, so the group's members cannot exhaust them.
 */
export function rootSocketPath(path: string): string {
  return path.endsWith(".sock") ? `${path.slice(0, -".sock".length)}.root.sock` : `${path}.root`;
}

/** sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

function tooLong(path: string): boolean {
  return new TextEncoder().encode(path).length > MAX_SOCKET_PATH_BYTES;
}

export class ControlSocketError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ControlSocketError";
  }
}

export interface SocketIdentity {
  dev: number;
  ino: number;
}

export interface BoundSocket {
  listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>;
  identity: SocketIdentity;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Resolves a group name or numeric id against /etc/group. */
export async function resolveGroup(group: string | number): Promise<number> {
  if (typeof group === "number" || /^\d+$/.test(group)) {
    const gid = Number(group);
    if (!Number.isSafeInteger(gid) || gid < 0) {
      throw new ControlSocketError(`invalid control group id ${group}`);
    }
    return gid;
  }
  let text = "";
  try {
    text = await Deno.readTextFile("/etc/group");
  } catch (error) {
    throw new ControlSocketError(
      `cannot look up control group '${group}': reading /etc/group failed (${describe(error)})`,
    );
  }
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new ControlSocketError(
    `control group '${group}' does not exist; create it (groupadd ${group}) or leave the group ` +
      `option unset so only root can use the control socket`,
  );
}

/** Name of a group id from /etc/group, for messages; undefined if unknown. */
export async function groupName(gid: number): Promise<string | undefined> {
  try {
    for (const line of (await Deno.readTextFile("/etc/group")).split("\n")) {
      const [name, , id] = line.split(":");
      if (id === String(gid) && name) return name;
    }
  } catch {
    // unreadable /etc/group: the caller falls back to the number
  }
  return undefined;
}

/** True if something answers on the socket (a running daemon); false for a stale file. */
async function socketAnswers(path: string): Promise<boolean> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused || error instanceof Deno.errors.NotFound) {
      return false;
    }
    throw new ControlSocketError(
      `cannot tell whether the control socket ${path} is in use: ${describe(error)}`,
    );
  }
  conn.close();
  return true;
}

async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function ensureDirectory(dir: string): Promise<void> {
  const info = await lstatOrUndefined(dir);
  if (info !== undefined) {
    if (!info.isDirectory) {
      throw new ControlSocketError(`${dir} exists and is not a directory; move it away`);
    }
    return;
  }
  try {
    await Deno.mkdir(dir, { recursive: true });
    // explicit chmod: mkdir's mode is filtered by the umask, and 0700 would lock out the group
    await Deno.chmod(dir, 0o755);
  } catch (error) {
    throw new ControlSocketError(
      `cannot create control socket directory ${dir}: ${describe(error)}; the daemon must run ` +
        `as root`,
    );
  }
}

async function checkExisting(path: string): Promise<void> {
  const info = await lstatOrUndefined(path);
  if (info === undefined) return;
  if (!info.isSocket) {
    throw new ControlSocketError(
      `${path} exists and is not a socket; refusing to replace it. Move it away or choose ` +
        `another control socket path`,
    );
  }
  if (await socketAnswers(path)) {
    throw new ControlSocketError(
      `another bpfpilot daemon is already running (its control socket ${path} answers); stop ` +
        `it first (systemctl stop bpfpilot) or give this one another control socket path`,
    );
  }
  // Stale socket of a dead daemon: the rename below replaces it.
}

/**
 * Binds the control socket at `path` with mode 0600 (root only), or 0660 and group `group`.
 * Throws ControlSocketError with a message naming cause and fix.
 */
export async function bindControlSocket(
  path: string,
  group?: string | number,
): Promise<BoundSocket> {
  if (tooLong(path)) {
    throw new ControlSocketError(
      `control socket path ${path} is too long: UNIX socket paths are limited to ` +
        `${MAX_SOCKET_PATH_BYTES} bytes; choose a shorter path`,
    );
  }
  const dir = dirname(path);
  await ensureDirectory(dir);
  await checkExisting(path);
  const gid = group === undefined ? undefined : await resolveGroup(group);

  let privateDir: string;
  try {
    privateDir = await Deno.makeTempDir({ dir, prefix: ".ctl" });
  } catch (error) {
    throw new ControlSocketError(
      `cannot create the control socket in ${dir}: ${describe(error)}; the daemon must run as ` +
        `root`,
    );
  }
  const bindPath = `${privateDir}/s`;
  if (tooLong(bindPath)) {
    await Deno.remove(privateDir).catch(() => {});
    throw new ControlSocketError(
      `control socket directory ${dir} is too deep: bpfpilot binds in a temporary directory ` +
        `there first and that path would exceed ${MAX_SOCKET_PATH_BYTES} bytes; choose a ` +
        `shorter path`,
    );
  }
  let listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr> | undefined;
  try {
    listener = Deno.listen({ transport: "unix", path: bindPath });
    if (gid === undefined) {
      await Deno.chmod(bindPath, 0o600);
    } else {
      await Deno.chown(bindPath, null, gid);
      await Deno.chmod(bindPath, 0o660);
    }
    await Deno.rename(bindPath, path);
    const info = await Deno.lstat(path);
    return { listener, identity: { dev: info.dev, ino: info.ino ?? -1 } };
  } catch (error) {
    listener?.close();
    await Deno.remove(bindPath).catch(() => {});
    throw error instanceof ControlSocketError ? error : new ControlSocketError(
      `cannot create control socket ${path}: ${describe(error)}`,
    );
  } finally {
    await Deno.remove(privateDir).catch(() => {});
  }
}

/** Removes the socket file if it is still ours (a newer daemon may have replaced it). */
export async function removeControlSocket(path: string, identity: SocketIdentity): Promise<void> {
  const info = await lstatOrUndefined(path).catch(() => undefined);
  if (info?.isSocket && info.dev === identity.dev && info.ino === identity.ino) {
    await Deno.remove(path).catch(() => {});
  }
}
