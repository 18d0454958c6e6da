/** The sysctl (admin-override) tuner's glue on a fake context: write events in, overrides out. */
import assert from "node:assert/strict";
import { contract } from "../../dist/bpf/sysctl.contract.ts";
import { sysctlTuner } from "../../src/tuners/sysctl.ts";
import { decodeEvent, encodeEvent } from "../../src/tuning/event.ts";
import { fakeObject, FakeTunerContext, startTuner } from "../support/fake_context.ts";

const RMEM = "net.ipv4.tcp_rmem";

function tuner() {
  const t = startTuner(sysctlTuner);
  t.ctx.managed = { [RMEM]: ["tcp_buffer"] };
  return t;
}

/** A writer-less event (5.10's flavour): name and written text at the payload's offsets. */
function noWriterEvent(name: string, value: string) {
  const bytes = encodeEvent({ tuner: contract.id, kind: contract.kinds.SY_WRITE, flags: 1 });
  const data = bytes.subarray(32);
  const enc = new TextEncoder();
  data.set(enc.encode(name), contract.payload.no_writer.name.offset);
  data.set(enc.encode(value), contract.payload.no_writer.value.offset);
  return decodeEvent(bytes);
}

Deno.test("sysctl: another process writing a managed sysctl is an override for each manager", () => {
  const t = tuner();
  t.ctx.managed[RMEM] = ["tcp_buffer", "other"];
  t.event({
    kind: contract.kinds.SY_WRITE,
    pid: 4242,
    netns: 4026532000n,
    comm: "sysctl",
    text: "net/ipv4/tcp_rmem",
  });
  assert.deepEqual(t.ctx.overrides.map((o) => [o.netns, o.sysctl, o.tuner, o.pid]), [
    ["ns:4026532000", RMEM, "tcp_buffer", 4242],
    ["ns:4026532000", RMEM, "other", 4242],
  ]);
  assert.match(
    t.ctx.lines.find((l) => l.level === "notice")!.msg,
    /modified sysctl 'net\.ipv4\.tcp_rmem' that tuner 'tcp_buffer' uses/,
  );
});

Deno.test("sysctl: a write to a sysctl no tuner manages is not an override", () => {
  const t = tuner();
  t.event({ kind: contract.kinds.SY_WRITE, pid: 1, text: "kernel/hostname" });
  t.event({ kind: contract.kinds.SY_WRITE, pid: 1, text: "" });
  t.event({ kind: 77, pid: 1, text: "net/ipv4/tcp_rmem" });
  assert.deepEqual(t.ctx.overrides, []);
});

Deno.test("sysctl: without a writer, our own recent write is recognised; another is an override everywhere", () => {
  const ctx = new FakeTunerContext("sysctl");
  ctx.managed = { [RMEM]: ["tcp_buffer"] };
  ctx.ownWrites.add(`${RMEM}\x004096 131072 7864320`);
  const t = sysctlTuner.create(ctx);
  t.onEvent?.(noWriterEvent("net/ipv4/tcp_rmem", "4096 131072 7864320"));
  assert.equal(ctx.overrides.length, 0, "our own write");
  t.onEvent?.(noWriterEvent("net/ipv4/tcp_rmem", "4096 16384 70000"));
  assert.deepEqual(ctx.overrides.map((o) => [o.netns, o.sysctl, o.comm]), [
    ["any", RMEM, "unknown (this kernel does not name sysctl writers)"],
  ]);
});

Deno.test("sysctl: configure tells the program our own tgid", () => {
  const t = tuner();
  const { object, writes } = fakeObject();
  t.tuner.configure?.(object);
  const cfg = new DataView(writes.get("bpfp_config")!.buffer);
  assert.equal(cfg.getBigUint64(contract.params.own_tgid.offset, true), BigInt(Deno.pid));
});
