/**
 * Temporary directories for tests (under $TMPDIR, never the checkout), removed with everything
 * in them however the test ends.
 */

/** Runs `fn` in a fresh directory named `<prefix>XXXX`, removed afterwards. */
export function withTempDir(prefix: string, fn: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix });
  try {
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** A Deno.test body that runs `fn` (sync or async) in a fresh directory, removed afterwards. */
export function inTempDir(
  prefix: string,
  fn: (dir: string) => void | Promise<void>,
): () => Promise<void> {
  return async () => {
    const dir = Deno.makeTempDirSync({ prefix });
    try {
      await fn(dir);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  };
}
