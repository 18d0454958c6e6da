/** Public surface of the libbpf binding. */
export { BpfError, type BpfErrorKind } from "./errors.ts";
export { type Libbpf, LibbpfUnavailableError, openLibbpf } from "./loader.ts";
export { type AttachKind, BpfLink, BpfObject, BpfProgram } from "./object.ts";
export { BpfMap, u32Key } from "./map.ts";
export { RingBufferReader, type SampleHandler } from "./ringbuf.ts";
export { KernelBtf } from "./btf.ts";
export { lib, possibleCpus, setLibbpfLogSink, strerror } from "./runtime.ts";
