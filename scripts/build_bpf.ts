/**
 * Compiles bpf/*.bpf.c (and the test objects in test/bpf/) into CO-RE objects under dist/bpf/,
 * DWARF stripped by `bpftool gen object`, ready to be embedded with bytes imports.
 *
 * Incremental: each object carries a stamp (hash of its source, the shared headers, vmlinux.h,
 * the compiler flags and version); unchanged objects are not rebuilt.
 *
 * Environment: BPFPILOT_BTF (BTF file for vmlinux.h, default /sys/kernel/btf/vmlinux, for cross
 * builds), BPFPILOT_CLANG (compiler, default clang-16 then clang), BPFPILOT_BPFTOOL.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import process from "node:process";
import { ContractError, extractContract, renderContractModule } from "../src/tuning/contract.ts";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const OUT = join(ROOT, "dist", "bpf");
const SOURCE_DIRS = [join(ROOT, "bpf"), join(ROOT, "test", "bpf")];
const INCLUDE = join(ROOT, "bpf", "include");
const quiet = process.argv.includes("--quiet");

function fail(msg: string): never {
  console.error(`build-bpf: ${msg}`);
  process.exit(1);
}

function which(candidates: string[]): string | null {
  for (const c of candidates) {
    try {
      execFileSync(c, ["--version"], { stdio: "ignore" });
      return c;
    } catch {
      // try the next one
    }
  }
  return null;
}

function sha256(...parts: (string | Uint8Array)[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

function targetArch(): string {
  const m = process.arch;
  if (m === "x64") return "x86";
  if (m === "arm64") return "arm64";
  fail(`unsupported build architecture ${m}`);
}

const clang = process.env.BPFPILOT_CLANG ?? which(["clang-16", "clang"]);
if (!clang) {
  fail("no clang found; run `bash scripts/setup` (installs clang-16) or set BPFPILOT_CLANG");
}
const bpftool = process.env.BPFPILOT_BPFTOOL ??
  which(["bpftool", "/usr/sbin/bpftool", "/usr/local/sbin/bpftool"]);
if (!bpftool) fail("no bpftool found; run `bash scripts/setup` or set BPFPILOT_BPFTOOL");
const readelf = which(["llvm-readelf-16", "llvm-readelf", "readelf"]);

mkdirSync(OUT, { recursive: true });

// vmlinux.h, regenerated only when the BTF it comes from changes.
const btfPath = process.env.BPFPILOT_BTF ?? "/sys/kernel/btf/vmlinux";
if (!existsSync(btfPath)) {
  fail(
    `no kernel BTF at ${btfPath}: this kernel was built without CONFIG_DEBUG_INFO_BTF. ` +
      `Point BPFPILOT_BTF at a BTF or vmlinux file of a kernel that has it (for cross builds).`,
  );
}
const btfHash = sha256(readFileSync(btfPath));
const vmlinuxH = join(OUT, "vmlinux.h");
const vmlinuxStamp = vmlinuxH + ".stamp";
if (
  !existsSync(vmlinuxH) || !existsSync(vmlinuxStamp) ||
  readFileSync(vmlinuxStamp, "utf8") !== btfHash
) {
  const text = execFileSync(bpftool, ["btf", "dump", "file", btfPath, "format", "c"], {
    maxBuffer: 64 << 20,
  });
  writeFileSync(vmlinuxH + ".tmp", text);
  renameSync(vmlinuxH + ".tmp", vmlinuxH);
  writeFileSync(vmlinuxStamp, btfHash);
  if (!quiet) console.error(`build-bpf: generated vmlinux.h from ${btfPath}`);
}

const flags = [
  "-g",
  "-O2",
  "-target",
  "bpf",
  `-D__TARGET_ARCH_${targetArch()}`,
  "-Wall",
  "-Werror",
];
const clangVersion = execFileSync(clang, ["--version"], { encoding: "utf8" });
const headers = readdirSync(INCLUDE).sort().map((f) => readFileSync(join(INCLUDE, f)));
const common = sha256(btfHash, clangVersion, flags.join(" "), ...headers);

let built = 0, fresh = 0;
for (const dir of SOURCE_DIRS) {
  if (!existsSync(dir)) continue;
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".bpf.c")).sort()) {
    const src = join(dir, file);
    const name = basename(file, ".c"); // tcp_buffer.bpf
    const out = join(OUT, `${name}.o`);
    const stamp = out + ".stamp";
    const key = sha256(common, readFileSync(src));
    if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, "utf8") === key) {
      fresh++;
      continue;
    }
    const tmp = join(OUT, `${name}.tmp.o`);
    try {
      execFileSync(clang, [...flags, "-I", OUT, "-I", INCLUDE, "-c", src, "-o", tmp], {
        stdio: ["ignore", "inherit", "inherit"],
      });
      // Drops DWARF (hundreds of KB) and keeps BTF and CO-RE relocations.
      execFileSync(bpftool, ["gen", "object", out + ".new", tmp], { stdio: "ignore" });
    } catch {
      rmSync(tmp, { force: true });
      fail(`compiling ${src} failed (see the compiler output above)`);
    }
    rmSync(tmp, { force: true });
    checkProgramNames(out + ".new", src);
    renameSync(out + ".new", out);
    writeFileSync(stamp, key);
    built++;
  }
}
if (!quiet || built > 0) console.error(`build-bpf: ${built} built, ${fresh} up to date`);
generateContracts();

/**
 * dist/bpf/<name>.contract.ts for every object whose source declares BPFP_CONTRACT: the
 * contract read from the object's BTF, typed, for the tuner to import (bpf2go's idea).
 */
function generateContracts() {
  const sources = SOURCE_DIRS.filter(existsSync).flatMap((dir) =>
    readdirSync(dir).filter((f) => f.endsWith(".bpf.c")).sort().map((f) => join(dir, f))
  );
  for (const src of sources) {
    const file = basename(src);
    const name = basename(file, ".bpf.c");
    const obj = join(OUT, `${name}.bpf.o`);
    if (!readFileSync(src, "utf8").includes("BPFP_CONTRACT(")) continue;
    let text: string;
    try {
      const contract = extractContract(new Uint8Array(readFileSync(obj)));
      if (contract.tuner !== name) {
        fail(`${src}: BPFP_CONTRACT names tuner '${contract.tuner}'; it must be '${name}'`);
      }
      text = renderContractModule(contract, `dist/bpf/${name}.bpf.o`);
    } catch (e) {
      if (e instanceof ContractError) fail(`${src}: ${e.message}`);
      throw e;
    }
    const out = join(OUT, `${name}.contract.ts`);
    if (existsSync(out) && readFileSync(out, "utf8") === text) continue;
    writeFileSync(out + ".tmp", text);
    renameSync(out + ".tmp", out);
  }
}

/** Every program must be named bpfp_* so `bpftool prog` shows which programs are ours. */
function checkProgramNames(obj: string, src: string) {
  if (!readelf) return;
  const syms = execFileSync(readelf, ["-s", "--wide", obj], { encoding: "utf8" });
  const bad = syms.split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((c) => c[3] === "FUNC" && c[4] === "GLOBAL" && !c[7]?.startsWith("bpfp_"))
    .map((c) => c[7]);
  if (bad.length) {
    rmSync(obj, { force: true });
    fail(`${src}: program names must start with bpfp_: ${bad.join(", ")}`);
  }
}
