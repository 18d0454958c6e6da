/**
 * Neighbour entries created and deleted at a steady rate on a device, to make the neighbour
 * table's hooks (neigh:neigh_create, neigh:neigh_cleanup_and_release) fire at a known pace; at
 * most 256 entries exist at a time, far below gc_thresh1. Run inside a namespace with `device`
 * up and an IPv4 address in 198.18.0.0/16 on it:
 *   deno run -A paced_neigh.ts <entries/s> <seconds> <device>
 * Prints "ready" (creating starts then), and at the end one JSON line {"sent": N, "seconds": S}
 * (N: entries created).
 */
import { paced } from "./pace.ts";
import { spawnSync } from "node:child_process";

const [rateArg, secondsArg, device] = Deno.args;
const rate = Number(rateArg), seconds = Number(secondsArg);
if (!(rate > 0) || !(seconds > 0) || !device) {
  console.error("usage: paced_neigh.ts <entries/s > 0> <seconds > 0> <device>");
  Deno.exit(2);
}

const BATCH = 256;
/** One `ip -batch` run: `n` entries added, then deleted again. */
function churn(n: number): void {
  const addr = (i: number) => `198.18.${200 + (i >> 8)}.${i & 255}`;
  const lines: string[] = [];
  for (const verb of ["add", "del"]) {
    for (let i = 0; i < n; i++) {
      lines.push(`neigh ${verb} ${addr(i)} lladdr 02:00:00:00:00:01 dev ${device}`);
    }
  }
  const r = spawnSync("ip", ["-batch", "-"], { input: lines.join("\n") + "\n", encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip -batch failed: ${r.stderr}`);
}

console.log("ready");
const done = await paced(rate, seconds, (n) => {
  const batch = Math.min(BATCH, n);
  churn(batch);
  return batch;
});
console.log(JSON.stringify(done));
