#!/usr/bin/env -S node --experimental-wasm-relaxed-simd
// Runs a wasm32-wasip1 program (a test or bench binary built by cargo) under Node's V8, the
// engine family Envoy runs the filter on. Cargo uses it as the wasm32-wasip1 runner
// (.cargo/config.toml), so `cargo test --target wasm32-wasip1` and
// `cargo bench --target wasm32-wasip1` work unchanged:
//
//     scripts/wasi-run.mjs PROGRAM.wasm [ARGS...]
//
// The program sees ARGS, the RUST_* and CARGO_* environment variables, stdio, and the current
// directory mapped as "." READ-ONLY: Node's WASI has no read-only preopens, so the calls that
// create, write, truncate, rename or delete are refused here with EROFS before reaching it.
// Imports outside wasi_snapshot_preview1 (proxy-wasm's host calls, linked in when the filter
// crate is compiled for wasm32) are stubbed with functions that trap if ever called, and
// proxy-wasm's `_initialize` export is ignored: only `_start` runs.
// Needs Node 20 or later (WASI preview1 without a command-line flag).

import { readFile } from "node:fs/promises";
import process from "node:process";

// `node:wasi` announces itself as experimental on every run; keep other warnings.
process.removeAllListeners("warning");
process.on("warning", (warning) => {
  if (warning.name !== "ExperimentalWarning") {
    console.error(warning);
  }
});
const { WASI } = await import("node:wasi");

const ERRNO_ROFS = 69;
// path_open oflags and rights (WASI preview1).
const OFLAGS_CREAT = 1;
const OFLAGS_TRUNC = 8;
const RIGHT_FD_WRITE = 1n << 6n;
const RIGHT_FD_ALLOCATE = 1n << 8n;
const RIGHT_FD_FILESTAT_SET_SIZE = 1n << 22n;
const WRITE_RIGHTS = RIGHT_FD_WRITE | RIGHT_FD_ALLOCATE | RIGHT_FD_FILESTAT_SET_SIZE;
// Rights an opened descriptor must not carry on: every path or descriptor mutation.
const MUTATING_RIGHTS =
  WRITE_RIGHTS |
  (1n << 0n) | // fd_datasync
  (1n << 4n) | // fd_sync
  (1n << 9n) | // path_create_directory
  (1n << 10n) | // path_create_file
  (1n << 11n) | // path_link_source
  (1n << 12n) | // path_link_target
  (1n << 16n) | // path_rename_source
  (1n << 17n) | // path_rename_target
  (1n << 19n) | // path_filestat_set_size
  (1n << 20n) | // path_filestat_set_times
  (1n << 23n) | // fd_filestat_set_times
  (1n << 24n) | // path_symlink
  (1n << 25n) | // path_remove_directory
  (1n << 26n); // path_unlink_file

function usage() {
  console.error("usage: wasi-run.mjs PROGRAM.wasm [ARGS...]");
  process.exit(2);
}

const [program, ...args] = process.argv.slice(2);
if (!program) {
  usage();
}

const env = Object.fromEntries(
  Object.entries(process.env).filter(
    ([name]) => name.startsWith("RUST_") || name.startsWith("CARGO_") || name === "NO_COLOR",
  ),
);

const wasi = new WASI({
  version: "preview1",
  args: [program, ...args],
  env,
  preopens: { ".": process.cwd() },
  returnOnExit: true,
});

const refuse = () => ERRNO_ROFS;
const stdioOnly =
  (call) =>
  (fd, ...rest) =>
    fd <= 2 ? call(fd, ...rest) : ERRNO_ROFS;
const base = wasi.wasiImport;
const readOnly = {
  ...base,
  path_open(dirfd, dirflags, path, pathLen, oflags, rightsBase, rightsInheriting, fdflags, out) {
    if ((oflags & (OFLAGS_CREAT | OFLAGS_TRUNC)) !== 0 || (BigInt(rightsBase) & WRITE_RIGHTS) !== 0n) {
      return ERRNO_ROFS;
    }
    const keep = ~MUTATING_RIGHTS;
    return base.path_open(
      dirfd,
      dirflags,
      path,
      pathLen,
      oflags,
      BigInt(rightsBase) & keep,
      BigInt(rightsInheriting) & keep,
      fdflags,
      out,
    );
  },
  path_create_directory: refuse,
  path_filestat_set_times: refuse,
  path_link: refuse,
  path_remove_directory: refuse,
  path_rename: refuse,
  path_symlink: refuse,
  path_unlink_file: refuse,
  fd_allocate: stdioOnly(base.fd_allocate),
  fd_filestat_set_size: stdioOnly(base.fd_filestat_set_size),
  fd_filestat_set_times: stdioOnly(base.fd_filestat_set_times),
  fd_pwrite: stdioOnly(base.fd_pwrite),
  fd_write: stdioOnly(base.fd_write),
};

let module;
try {
  module = await WebAssembly.compile(await readFile(program));
} catch (err) {
  console.error(`wasi-run: cannot load ${program}: ${err.message}`);
  process.exit(2);
}

const imports = { wasi_snapshot_preview1: readOnly };
for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
  if (from === "wasi_snapshot_preview1" || kind !== "function") {
    continue;
  }
  imports[from] ??= {};
  imports[from][name] = () => {
    throw new Error(`wasi-run: ${program} called host function ${from}.${name}, which is not provided`);
  };
}

let code;
try {
  const instance = await WebAssembly.instantiate(module, imports);
  // A test binary linking the filter crate also exports proxy-wasm's `_initialize` (the
  // reactor entry point Envoy calls); Node refuses to start a module exporting both. `_start`
  // runs the constructors itself, so hand Node the command's exports only.
  const { _start, memory } = instance.exports;
  code = wasi.start({ exports: { _start, memory } });
} catch (err) {
  // A Rust panic under panic=abort ends in a wasm trap (`unreachable`).
  console.error(`wasi-run: ${program} trapped: ${err.message}`);
  code = 134;
}
process.exit(code ?? 0);
