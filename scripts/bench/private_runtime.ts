/** A copy of the Deno runtime that only the daemon started from it maps. */
import { join } from "node:path";
import { tempDir } from "./tempdir.ts";

/** `argv` with its runtime (argv[0]) replaced by a private copy, written back to disk. */
export function privateRuntimeArgv(argv: string[]): string[] {
  const copy = join(tempDir("runtime"), "deno");
  Deno.copyFileSync(Deno.realPathSync(argv[0]), copy);
  Deno.chmodSync(copy, 0o755);
  // Dirty pages cannot leave memory until they are on disk.
  using file = Deno.openSync(copy, { read: true });
  file.syncSync();
  return [copy, ...argv.slice(1)];
}
