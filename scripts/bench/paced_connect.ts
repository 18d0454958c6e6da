/**
 * TCP connections opened and closed at a steady rate, to make connection hooks (tcp_conn's
 * sockops: connect, established, state changes) fire at a known pace. The listener and the
 * client share the namespace; `address` should not be loopback's 127/8 (tcp_conn skips loopback
 * before its real work), e.g. an address added to `lo`. Run inside a namespace:
 *   deno run -A paced_connect.ts <connections/s> <seconds> <address>
 * Prints "ready" once listening (connecting starts then), and at the end one JSON line
 * {"sent": N, "seconds": S} (N: connections made).
 */
import { paced } from "./pace.ts";
const [rateArg, secondsArg, hostname] = Deno.args;
const rate = Number(rateArg), seconds = Number(secondsArg);
if (!(rate > 0) || !(seconds > 0) || !hostname) {
  console.error("usage: paced_connect.ts <connections/s > 0> <seconds > 0> <address>");
  Deno.exit(2);
}

const listener = Deno.listen({ hostname, port: 0 });
const port = (listener.addr as Deno.NetAddr).port;
const accepting = (async () => {
  for await (const c of listener) c.close();
})().catch(() => {/* closed at the end */});

console.log("ready");
const done = await paced(rate, seconds, async () => {
  (await Deno.connect({ hostname, port })).close();
  return 1;
});
listener.close();
await accepting;
console.log(JSON.stringify(done));
