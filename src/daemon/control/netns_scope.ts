/**
 * Which namespaces `query tunables` and `query status` show (`--netns`, the request's `netns`).
 * The default is bounded: with a thousand containers, every tunable of every namespace the daemon
 * knows is a /proc/sys read each and a second-long answer, most of it values bpfpilot never
 * touched. Shared by the client (its usage errors) and the daemon (its bad-args answer).
 */

/**
 * The words `--netns` takes besides a namespace's name or key. changed: the host's every tunable;
 * elsewhere only the sysctls bpfpilot changed, holds a journal entry of or the admin overrode
 * (and all of --netns's namespace). all: every tunable of every namespace the daemon knows.
 * global: the host's only.
 */
export const NETNS_SCOPES = ["changed", "all", "global"] as const;

export type NetnsScope = typeof NETNS_SCOPES[number];

/** Default when a request names none. */
export const DEFAULT_NETNS_SCOPE: NetnsScope = "changed";

/**
 * A name as `ip netns` and container runtimes make them (no '/', not '.' or '..'), `ns:<inode>`
 * (how answers show a namespace without a name) or a bare inode number.
 */
const SELECTOR = /^[A-Za-z0-9_:@+=-][A-Za-z0-9_.:@+=-]{0,254}$/;

/** Null when `value` can name namespaces, else why not (for a usage error). */
export function netnsSelectorError(value: string): string | null {
  if (SELECTOR.test(value)) return null;
  return `expected ${NETNS_SCOPES.join(", ")}, a namespace's name (as ` +
    `'ip netns' lists it) or ns:<inode>`;
}
