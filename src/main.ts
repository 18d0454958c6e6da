/** Entry point of the bpfpilot program (bundled into dist/bpfpilot.js by `deno task build`). */
import { main } from "./cli/main.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
