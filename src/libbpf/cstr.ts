/** C string and pointer helpers for FFI calls. */
const enc = new TextEncoder();

/** NUL-terminated UTF-8 copy; keep the result referenced for as long as C may read it. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  return enc.encode(s + "\0") as Uint8Array<ArrayBuffer>;
}

export function readCString(p: Deno.PointerValue): string {
  return p === null ? "" : Deno.UnsafePointerView.getCString(p);
}

export function pointerAddress(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}
