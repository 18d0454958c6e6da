/**
 * Loopback TCP at a steady message rate, to make the tcp_buffer hooks fire at a known pace:
 * every small write with TCP_NODELAY is one segment (tcp_probe at the receiver, again for its
 * ACK at the sender) and every read runs tcp_rcv_space_adjust. Run inside a namespace:
 *   deno run -A paced_tcp.ts <messages/s> <seconds> [bytes]
 * Prints "ready" once connected (sending starts then), and at the end one JSON line
 * {"sent": N, "seconds": S}.
 */
import { paced } from "./pace.ts";
const [rateArg, secondsArg, sizeArg = "64"] = Deno.args;
const rate = Number(rateArg), seconds = Number(secondsArg), size = Number(sizeArg);
if (!(rate > 0) || !(seconds > 0) || !(size > 0)) {
  console.error("usage: paced_tcp.ts <messages/s > 0> <seconds > 0> [bytes > 0]");
  Deno.exit(2);
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const accepted = listener.accept();
const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
client.setNoDelay(true);
const server = await accepted;
listener.close();

const draining = (async () => {
  const buf = new Uint8Array(256 * 1024);
  while ((await server.read(buf)) !== null) {
    // discard
  }
})();

console.log("ready");
const message = new Uint8Array(size);
const done = await paced(rate, seconds, async () => {
  await client.write(message);
  return 1;
});
client.close();
await draining;
server.close();
console.log(JSON.stringify(done));
