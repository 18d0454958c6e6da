import assert from "node:assert/strict";
import { INT_MAX } from "../../src/tuning/domain.ts";
import {
  kernelDefaultTcpBufferMax,
  kernelDefaultTcpMem,
  socketBufferCeiling,
  stockTcpBufferMax,
  tcpMemCeilings,
} from "../../src/tuners/tcp_buffer_limits.ts";

Deno.test("tcpMemCeilings: 1/16, 1/8 and 1/4 of the free-buffer pages, exact when huge", () => {
  assert.deepEqual(tcpMemCeilings(1_000_000), { min: 62500, pressure: 125000, max: 250000 });
  assert.deepEqual(tcpMemCeilings(1_000_003), { min: 62500, pressure: 125000, max: 250000 });
  const huge = 2 ** 40 + 7;
  assert.deepEqual(tcpMemCeilings(huge), { min: 2 ** 36, pressure: 2 ** 37, max: 2 ** 38 + 1 });
  assert.deepEqual(tcpMemCeilings(0), { min: 0, pressure: 0, max: 0 });
});

Deno.test("kernelDefaultTcpMem reproduces tcp_init_mem (values seen on a 24 GB host)", () => {
  assert.deepEqual(kernelDefaultTcpMem(383868 * 16 + 5), [287901, 383868, 575802]);
  // tiny machines: limit never below 128 pages
  assert.deepEqual(kernelDefaultTcpMem(1000), [96, 128, 192]);
});

Deno.test("kernelDefaultTcpBufferMax follows tcp_init, including the 6.16 rmem change", () => {
  const big = 6_000_000; // pages: 1/128 in bytes is far above every cap
  assert.deepEqual(kernelDefaultTcpBufferMax(big, 4096, { major: 6, minor: 18 }), {
    wmem: 4194304,
    rmem: 33554432,
  });
  assert.deepEqual(kernelDefaultTcpBufferMax(big, 4096, { major: 6, minor: 15 }), {
    wmem: 4194304,
    rmem: 6291456,
  });
  assert.equal(kernelDefaultTcpBufferMax(big, 4096, { major: 5, minor: 15 }).rmem, 6291456);
  assert.equal(kernelDefaultTcpBufferMax(big, 4096, { major: 7, minor: 0 }).rmem, 33554432);
  assert.equal(kernelDefaultTcpBufferMax(big, 4096).rmem, 33554432);
  // small: limit = 100000 * 4096 / 128 = 3.2 MB
  assert.deepEqual(kernelDefaultTcpBufferMax(100_000, 4096, { major: 6, minor: 1 }), {
    wmem: 3_200_000,
    rmem: 3_200_000,
  });
  // tiny: floors of 64 KiB and 128 KiB
  assert.deepEqual(kernelDefaultTcpBufferMax(1000, 4096), { wmem: 65536, rmem: 131072 });
});

Deno.test("socketBufferCeiling: an eighth of tcp_mem[2] in bytes, never past INT_MAX", () => {
  assert.equal(socketBufferCeiling(575802, 4096), 294_810_624);
  assert.equal(socketBufferCeiling(10_000_000, 4096), INT_MAX);
  assert.equal(socketBufferCeiling(4194304, 4096), INT_MAX); // exactly 2^31 bytes -> INT_MAX
  assert.equal(socketBufferCeiling(0, 4096), 0);
});

Deno.test("stockTcpBufferMax: tcp_init's caps by release (what the audit calls the default)", () => {
  assert.deepEqual(stockTcpBufferMax("6.15.3-arch1"), { wmem: 4194304, rmem: 6291456 });
  assert.deepEqual(stockTcpBufferMax("6.18.44"), { wmem: 4194304, rmem: 33554432 });
  assert.deepEqual(stockTcpBufferMax("5.10.0-21-amd64").rmem, 6291456);
  assert.deepEqual(stockTcpBufferMax(null).rmem, 33554432);
});
