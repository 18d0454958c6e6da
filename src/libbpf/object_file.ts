/**
 * Reads a compiled BPF object file without the kernel (and without root): its programs with the
 * sections they are in (the SEC() strings), and its BTF types. Pure parsing of the ELF64
 * little-endian file clang writes, so a build step or unit test can inspect what an object holds.
 */

export class ObjectFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ObjectFileError";
  }
}

interface Section {
  name: string;
  type: number;
  offset: number;
  size: number;
  link: number;
}

const SHT_SYMTAB = 2;
const STT_FUNC = 2;
const STB_GLOBAL = 1;

const dec = new TextDecoder();

function cStringAt(bytes: Uint8Array, at: number): string {
  let end = at;
  while (end < bytes.length && bytes[end] !== 0) end++;
  return dec.decode(bytes.subarray(at, end));
}

function sections(bytes: Uint8Array): Section[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 64 || dv.getUint32(0) !== 0x7f454c46) {
    throw new ObjectFileError("not an ELF file");
  }
  if (bytes[4] !== 2 || bytes[5] !== 1) {
    throw new ObjectFileError("not a 64-bit little-endian ELF file (a BPF object is both)");
  }
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const shstrndx = dv.getUint16(0x3e, true);
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    raw.push({
      nameOff: dv.getUint32(at, true),
      type: dv.getUint32(at + 4, true),
      offset: Number(dv.getBigUint64(at + 24, true)),
      size: Number(dv.getBigUint64(at + 32, true)),
      link: dv.getUint32(at + 40, true),
    });
  }
  const names = raw[shstrndx];
  if (!names) throw new ObjectFileError("ELF file without a section name table");
  return raw.map((s) => ({
    name: cStringAt(bytes, names.offset + s.nameOff),
    type: s.type,
    offset: s.offset,
    size: s.size,
    link: s.link,
  }));
}

/** Global functions and the section each is in: program name -> SEC() string. */
export function objectPrograms(bytes: Uint8Array): Map<string, string> {
  const secs = sections(bytes);
  const symtab = secs.find((s) => s.type === SHT_SYMTAB);
  const out = new Map<string, string>();
  if (!symtab) return out;
  const strtab = secs[symtab.link];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = symtab.offset; at + 24 <= symtab.offset + symtab.size; at += 24) {
    const info = bytes[at + 4];
    if ((info & 0xf) !== STT_FUNC || info >> 4 !== STB_GLOBAL) continue;
    const shndx = dv.getUint16(at + 6, true);
    const name = cStringAt(bytes, strtab.offset + dv.getUint32(at, true));
    out.set(name, secs[shndx]?.name ?? "");
  }
  return out;
}

/** BTF kinds (include/uapi/linux/btf.h). */
export const BTF = {
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;

export interface BtfMember {
  name: string;
  type: number;
  /** Offset in bits. */
  bitOffset: number;
  /** Bitfield size in bits (0: not a bitfield). */
  bitSize: number;
}

export interface BtfType {
  id: number;
  kind: number;
  name: string;
  /** Size in bytes (INT, STRUCT, UNION, ENUM, DATASEC, FLOAT). */
  size: number;
  /** Referenced type (PTR, TYPEDEF, CONST, VOLATILE, RESTRICT, FUNC, VAR, ...). */
  type: number;
  members: BtfMember[];
  enumValues: { name: string; value: number }[];
  /** INT: signed encoding. */
  signed: boolean;
  /** ARRAY: element type and count. */
  array?: { type: number; count: number };
}

/** Every BTF type of the object, indexed by id (id 0 is void and absent). */
export function objectBtf(bytes: Uint8Array): Map<number, BtfType> {
  const sec = sections(bytes).find((s) => s.name === ".BTF");
  if (!sec) throw new ObjectFileError("the object has no BTF (compile with clang -g)");
  const dv = new DataView(bytes.buffer, bytes.byteOffset + sec.offset, sec.size);
  if (dv.getUint16(0, true) !== 0xeb9f) throw new ObjectFileError("bad BTF magic");
  const hdrLen = dv.getUint32(4, true);
  const typeOff = hdrLen + dv.getUint32(8, true);
  const typeLen = dv.getUint32(12, true);
  const strOff = hdrLen + dv.getUint32(16, true);
  const str = (off: number) => cStringAt(bytes, sec.offset + strOff + off);
  const types = new Map<number, BtfType>();
  let at = typeOff;
  for (let id = 1; at < typeOff + typeLen; id++) {
    const info = dv.getUint32(at + 4, true);
    const kind = (info >> 24) & 0x1f;
    const vlen = info & 0xffff;
    const kflag = info >>> 31;
    const sizeOrType = dv.getUint32(at + 8, true);
    const t: BtfType = {
      id,
      kind,
      name: str(dv.getUint32(at, true)),
      size: sizeOrType,
      type: sizeOrType,
      members: [],
      enumValues: [],
      signed: false,
    };
    at += 12;
    switch (kind) {
      case BTF.INT:
        t.signed = (dv.getUint32(at, true) >> 24 & 1) === 1;
        at += 4;
        break;
      case BTF.ARRAY:
        t.array = { type: dv.getUint32(at, true), count: dv.getUint32(at + 8, true) };
        at += 12;
        break;
      case BTF.STRUCT:
      case BTF.UNION:
        for (let i = 0; i < vlen; i++, at += 12) {
          const off = dv.getUint32(at + 8, true);
          t.members.push({
            name: str(dv.getUint32(at, true)),
            type: dv.getUint32(at + 4, true),
            bitOffset: kflag ? off & 0xffffff : off,
            bitSize: kflag ? off >>> 24 : 0,
          });
        }
        break;
      case BTF.ENUM:
        for (let i = 0; i < vlen; i++, at += 8) {
          t.enumValues.push({
            name: str(dv.getUint32(at, true)),
            value: dv.getInt32(at + 4, true),
          });
        }
        break;
      case BTF.ENUM64:
        for (let i = 0; i < vlen; i++, at += 12) {
          const lo = dv.getUint32(at + 4, true), hi = dv.getUint32(at + 8, true);
          t.enumValues.push({ name: str(dv.getUint32(at, true)), value: hi * 2 ** 32 + lo });
        }
        break;
      case BTF.FUNC_PROTO:
        for (let i = 0; i < vlen; i++, at += 8) {
          t.members.push({
            name: str(dv.getUint32(at, true)),
            type: dv.getUint32(at + 4, true),
            bitOffset: 0,
            bitSize: 0,
          });
        }
        break;
      case BTF.VAR:
      case BTF.DECL_TAG:
        at += 4;
        break;
      case BTF.DATASEC:
        at += 12 * vlen;
        break;
    }
    types.set(id, t);
  }
  return types;
}
