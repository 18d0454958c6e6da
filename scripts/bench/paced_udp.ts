/**
 * Loopback UDP at a steady datagram rate into a socket that never reads, to make the drop hooks
 * fire at a known pace: once its receive queue is full, every datagram is dropped there
 * (udp:udp_fail_queue_rcv_skb, skb:kfree_skb with reason SOCKET_RCVBUFF). Run inside a namespace:
 *   deno run -A --unstable-net paced_udp.ts <datagrams/s> <seconds> [bytes]
 * Prints "ready" once both sockets are bound (sending starts then), and at the end one JSON line
 * {"sent": N, "seconds": S}.
 */
import { paced } from "./pace.ts";
const [rateArg, secondsArg, sizeArg = "64"] = Deno.args;
const rate = Number(rateArg), seconds = Number(secondsArg), size = Number(sizeArg);
if (!(rate > 0) || !(seconds > 0) || !(size > 0)) {
  console.error("usage: paced_udp.ts <datagrams/s > 0> <seconds > 0> [bytes > 0]");
  Deno.exit(2);
}

const hostname = "127.0.0.1";
// Nothing ever calls receive() on it: its queue fills and stays full.
const sink = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
const sender = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
const to = sink.addr as Deno.NetAddr;

console.log("ready");
const message = new Uint8Array(size);
const done = await paced(rate, seconds, async () => {
  await sender.send(message, to);
  return 1;
});
sender.close();
sink.close();
console.log(JSON.stringify(done));
