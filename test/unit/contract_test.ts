import assert from "node:assert/strict";
import probeObject from "../../dist/bpf/probe.bpf.o" with { type: "bytes" };
import {
  configBytes,
  type Contract,
  ContractError,
  extractContract,
  readPayload,
} from "../../src/tuning/contract.ts";
import { checkTunerContract } from "../../src/tuning/contract_check.ts";
import { decodeEvent, encodeEvent } from "../../src/tuning/event.ts";
import type { TunerDefinition } from "../../src/tuning/tuner.ts";
import { TUNERS } from "../../src/tuners/registry.ts";
import { tcpBufferTuner } from "../../src/tuners/tcp_buffer.ts";

Deno.test("every shipped tuner agrees with its compiled object", () => {
  for (const def of TUNERS) assert.deepEqual(checkTunerContract(def), [], def.name);
});

Deno.test("tuner ids are unique", () => {
  const ids = TUNERS.map((t) => t.id);
  assert.equal(new Set(ids).size, ids.length, JSON.stringify(ids));
});

/** tcp_buffer's definition with its contract (or hooks) changed by `mutate`. */
function mismatched(mutate: (c: Contract, def: TunerDefinition) => void): TunerDefinition {
  const { contract, hooks } = tcpBufferTuner;
  const copy = { ...tcpBufferTuner, ...structuredClone({ contract, hooks }) };
  mutate(copy.contract as Contract, copy);
  return copy;
}

// deno-lint-ignore no-explicit-any
type Loose = any;

Deno.test("the check rejects a deliberately mismatched declaration, naming what differs", () => {
  const cases: [string, (c: Loose, d: Loose) => void, RegExp][] = [
    ["event kind", (c) => c.kinds.TB_RMEM_NEAR_MAX = 9, /kinds\.TB_RMEM_NEAR_MAX: 9 vs 1/],
    ["missing kind", (c) => delete c.kinds.TB_MEM_EXCEEDED, /kinds\.TB_MEM_EXCEEDED: undefined/],
    [
      "payload offset",
      (c) => c.payload.buffer.srtt_us.offset = 24,
      /payload\.buffer\.srtt_us\.offset: 24 vs 16/,
    ],
    ["payload size", (c) => c.payload.mem.allocated.size = 4, /payload\.mem\.allocated\.size/],
    ["param offset", (c) => c.params.lr_shift.offset = 24, /params\.lr_shift\.offset: 24 vs 16/],
    ["config offset", (c) => c.config.filter_tgid.offset = 12, /config\.filter_tgid\.offset/],
    ["contract id", (c) => c.id = 3, /at id: 3 vs 2/],
    ["definition id", (_c, d) => d.id = 7, /definition id 7, object's BPFP_CONTRACT id 2/],
    ["event header", (c) => c.event.pid.offset = 12, /event\.pid\.offset: 12 vs 8/],
    [
      "program name",
      (_c, d) => d.hooks[0].candidates[0].program = "bpfp_tb_rcv_btf2",
      /program bpfp_tb_rcv_btf2 \(tp_btf\) is not in the object/,
    ],
    [
      "section target",
      (_c, d) => d.hooks[0].candidates[2].target = "tcp/tcp_probe",
      /bpfp_tb_rcv_tp is in section 'tp\/tcp\/tcp_rcv_space_adjust', but the hook declares tracepoint tcp\/tcp_probe/,
    ],
    [
      "program flavour",
      (_c, d) => d.hooks[0].candidates[3].kind = "kprobe",
      /bpfp_tb_rcv_fe is in section 'fentry\/tcp_rcv_space_adjust', but the hook declares kprobe/,
    ],
    [
      "program in no chain",
      (_c, d) => d.hooks[2].candidates.pop(),
      /program bpfp_tb_mem_kp is in the object but in no hook's chain/,
    ],
  ];
  for (const [what, mutate, expected] of cases) {
    const errors = checkTunerContract(mismatched(mutate));
    assert.ok(errors.length > 0, `${what}: not rejected`);
    assert.match(errors.join("\n"), expected, what);
  }
});

Deno.test("an object without BPFP_CONTRACT is refused with the fix", () => {
  assert.throws(
    () => extractContract(probeObject),
    (e) => e instanceof ContractError && /add BPFP_CONTRACT/.test(e.message),
  );
  assert.throws(() => extractContract(new Uint8Array(100)), /not an ELF file/);
});

Deno.test("payloads read and configs write at the contract's offsets", () => {
  const c = tcpBufferTuner.contract!;
  const ev = decodeEvent(encodeEvent({ values: [100n, 200n, 300n, 1n] }));
  assert.deepEqual(readPayload(ev.data, tcpBufferTuner.contract!.payload.buffer), {
    buf: 100,
    limit: 200,
    srtt_us: 300,
    userlocks: 1,
    want: 0,
    used: 0,
  });
  assert.deepEqual(readPayload(ev.data, c.payload.mem), { allocated: 100, tcp_mem: [200, 300, 1] });
  const cfg = new DataView(configBytes(c, { rl_interval_ns: 5n, lr_shift: 4 }).buffer);
  assert.equal(cfg.byteLength, 64);
  assert.equal(cfg.getBigUint64(0, true), 5n);
  assert.equal(cfg.getBigUint64(16, true), 4n);
  assert.throws(() => configBytes(c, { nope: 1 } as Loose), /no parameter 'nope'/);
});
