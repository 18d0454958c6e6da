/**
 * The contract between a tuner's BPF C and its TypeScript: tuner id, event kinds, payload layout,
 * parameter (config) layout and programs. It is declared once, in C (BPFP_CONTRACT, see
 * bpf/include/bpfpilot_common.bpf.h); the build reads it from the compiled object's BTF and
 * writes `dist/bpf/<name>.contract.ts` (renderContractModule), which the tuner imports typed.
 * contract_check.ts checks the generated module, the object and the tuner's hooks agree.
 */
import { BTF, type BtfType, objectBtf, objectPrograms } from "../libbpf/object_file.ts";
import { cString } from "./event.ts";

/** One field: byte offset (in the payload, or in the config map's value) and size. */
export interface Field {
  offset: number;
  /** Bytes of one element. */
  size: number;
  /** Arrays: number of elements. */
  count?: number;
  /** char arrays: a NUL-terminated string. */
  text?: boolean;
  signed?: boolean;
}

export type Layout = Readonly<Record<string, Field>>;

export interface Contract {
  tuner: string;
  id: number;
  /** Event kinds by their C name. */
  kinds: Readonly<Record<string, number>>;
  /** Payload shapes (the payload union's members) by name: field layouts within the payload. */
  payload: Readonly<Record<string, Layout>>;
  /** The tuner's parameters: offsets within the config map's value (bpfp_config). */
  params: Layout;
  /** The common bpfp_config fields (rate limit, tgid filter, flags). */
  config: Layout;
  configSize: number;
  /** struct bpfp_event as this object writes it. */
  event: Layout;
  eventSize: number;
  /** The rate limiter's map key and value (struct bpfp_rl_key, bpfp_rl_val): userspace mutes keys. */
  rateLimit: { key: Layout; keySize: number; value: Layout; valueSize: number };
  /** Every program in the object: name -> ELF section (the SEC() string). */
  programs: Readonly<Record<string, string>>;
}

export class ContractError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ContractError";
  }
}

const CONTRACT_FUNC = "bpfp_contract_";

/** Reads the contract from a compiled object's BTF and program sections. */
export function extractContract(object: Uint8Array): Contract {
  const types = objectBtf(object);
  const fn = [...types.values()].find((t) =>
    t.kind === BTF.FUNC && t.name.startsWith(CONTRACT_FUNC)
  );
  if (!fn) {
    throw new ContractError(
      "the object declares no contract: add BPFP_CONTRACT(name, id, kinds, payload, params) " +
        "to its .bpf.c (see docs/adding-a-tuner.md)",
    );
  }
  const tuner = fn.name.slice(CONTRACT_FUNC.length);
  const proto = types.get(fn.type)!;
  const struct = resolve(types, proto.members[0]?.type ?? 0);
  const member = (name: string) => {
    const m = struct.members.find((x) => x.name === name);
    if (!m) throw new ContractError(`contract of ${tuner}: no member '${name}'`);
    return { type: resolve(types, m.type), offset: m.bitOffset / 8 };
  };
  const idEnum = member("id").type;
  const kindEnum = member("kind").type;
  const payload = member("payload").type;
  const params = member("params").type;
  const config = member("config").type;
  const event = member("event").type;
  const rlKey = member("rl_key").type, rlVal = member("rl_val").type;
  const paramBase = config.members.find((m) => m.name === "param");
  if (!paramBase) throw new ContractError("struct bpfp_config has no 'param' area");
  const payloadShapes: Record<string, Layout> = {};
  if (payload.kind === BTF.UNION) {
    for (const m of payload.members) {
      payloadShapes[m.name] = layoutOf(types, resolve(types, m.type), 0);
    }
  } else {
    payloadShapes[tuner] = layoutOf(types, payload, 0);
  }
  const configLayout = layoutOf(types, config, 0);
  delete (configLayout as Record<string, Field>).param;
  return {
    tuner,
    id: idEnum.enumValues[0]?.value ?? -1,
    kinds: Object.fromEntries(kindEnum.enumValues.map((v) => [v.name, v.value])),
    payload: payloadShapes,
    params: layoutOf(types, params, paramBase.bitOffset / 8),
    config: configLayout,
    configSize: config.size,
    event: layoutOf(types, event, 0),
    eventSize: event.size,
    rateLimit: {
      key: layoutOf(types, rlKey, 0),
      keySize: rlKey.size,
      value: layoutOf(types, rlVal, 0),
      valueSize: rlVal.size,
    },
    programs: Object.fromEntries(
      [...objectPrograms(object)].filter(([name]) => !name.startsWith(CONTRACT_FUNC)),
    ),
  };
}

/** Follows typedefs and qualifiers to the type itself. */
function resolve(types: Map<number, BtfType>, id: number): BtfType {
  let t = types.get(id);
  while (
    t && (t.kind === BTF.TYPEDEF || t.kind === BTF.CONST || t.kind === BTF.VOLATILE ||
      t.kind === BTF.RESTRICT || t.kind === BTF.TYPE_TAG || t.kind === BTF.PTR)
  ) t = types.get(t.type);
  if (!t) throw new ContractError(`BTF type ${id} not found`);
  return t;
}

function fieldOf(types: Map<number, BtfType>, t: BtfType, offset: number): Field {
  if (t.kind === BTF.ARRAY && t.array) {
    const elem = resolve(types, t.array.type);
    const text = elem.kind === BTF.INT && elem.size === 1;
    return { offset, size: elem.size, count: t.array.count, ...(text ? { text: true } : {}) };
  }
  return { offset, size: t.size, ...(t.signed ? { signed: true } : {}) };
}

/** Field layouts of a struct's members; nested anonymous unions/structs flatten into it. */
function layoutOf(types: Map<number, BtfType>, t: BtfType, base: number): Layout {
  const out: Record<string, Field> = {};
  for (const m of t.members) {
    const mt = resolve(types, m.type);
    const offset = base + m.bitOffset / 8;
    if (m.name === "" && (mt.kind === BTF.STRUCT || mt.kind === BTF.UNION)) {
      Object.assign(out, layoutOf(types, mt, offset));
    } else out[m.name] = fieldOf(types, mt, offset);
  }
  return out;
}

/** The generated module's text: one typed `contract` constant. */
export function renderContractModule(c: Contract, source: string): string {
  return `// Generated by scripts/build_bpf.ts from the BTF of ${source}. Do not edit: change the\n` +
    `// BPFP_CONTRACT declaration in the .bpf.c and rebuild.\n` +
    `import type { Contract } from "../../src/tuning/contract.ts";\n\n` +
    `export const contract = ${render(c, "")} as const satisfies Contract;\n`;
}

/** JSON, one line per object of plain values (a field), indented otherwise. */
function render(v: unknown, indent: string): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.every(([, x]) => x === null || typeof x !== "object")) {
    return `{ ${
      entries.map(([k, x]) => `${JSON.stringify(k)}: ${JSON.stringify(x)}`).join(", ")
    } }`;
  }
  const inner = indent + "  ";
  return `{\n${
    entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${render(x, inner)},\n`).join("")
  }${indent}}`;
}

/** What a field reads as: text for char arrays, a number list for arrays, else a number. */
export type FieldValue<F> = F extends { text: true } ? string
  : F extends { count: number } ? number[]
  : number;

export type Values<L> = { -readonly [K in keyof L]: FieldValue<L[K]> };

function readOne(dv: DataView, at: number, f: Field): number {
  switch (f.size) {
    case 1:
      return f.signed ? dv.getInt8(at) : dv.getUint8(at);
    case 2:
      return f.signed ? dv.getInt16(at, true) : dv.getUint16(at, true);
    case 4:
      return f.signed ? dv.getInt32(at, true) : dv.getUint32(at, true);
    case 8:
      return Number(f.signed ? dv.getBigInt64(at, true) : dv.getBigUint64(at, true));
  }
  throw new ContractError(`cannot read a field of ${f.size} bytes`);
}

/** Reads a payload shape from an event's payload bytes (BpfpEvent.data). */
export function readPayload<L extends Layout>(data: Uint8Array, layout: L): Values<L> {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(layout)) {
    if (f.text) out[name] = cString(data.subarray(f.offset, f.offset + (f.count ?? 1)));
    else if (f.count !== undefined) {
      out[name] = Array.from({ length: f.count }, (_, i) => readOne(dv, f.offset + i * f.size, f));
    } else out[name] = readOne(dv, f.offset, f);
  }
  return out as Values<L>;
}

function writeOne(dv: DataView, f: Field, value: number | bigint): void {
  switch (f.size) {
    case 1:
      return dv.setUint8(f.offset, Number(value));
    case 2:
      return dv.setUint16(f.offset, Number(value), true);
    case 4:
      return dv.setUint32(f.offset, Number(value), true);
    case 8:
      return dv.setBigUint64(f.offset, BigInt(value), true);
  }
  throw new ContractError(`cannot write a field of ${f.size} bytes`);
}

/** The config map's value: the common fields and the tuner's parameters, by name. */
export function configBytes<C extends Contract>(
  c: C,
  values: Partial<Record<keyof C["config"] | keyof C["params"], number | bigint>>,
): Uint8Array {
  const bytes = new Uint8Array(c.configSize);
  const dv = new DataView(bytes.buffer);
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const f = c.params[name] ?? c.config[name];
    if (!f || f.count !== undefined) throw new ContractError(`${c.tuner}: no parameter '${name}'`);
    writeOne(dv, f, value as number | bigint);
  }
  return bytes;
}
