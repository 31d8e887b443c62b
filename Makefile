# qbank-connect: `make demo` and `make test` do all the set-up themselves (idempotently,
# printing each step), so they work on a fresh clone. See README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

WASM_TARGET := wasm32-unknown-unknown
# The one wasm-bindgen version: the crate pin in Cargo.toml ("=X.Y.Z") and the CLI must match.
WASM_BINDGEN_VERSION := $(shell sed -n 's/^wasm-bindgen = .*"=\([0-9.]*\)".*/\1/p' Cargo.toml)
BIN := node_modules/.bin
RAW := target/pkg-raw
WASM_OUT := target/$(WASM_TARGET)/release/qbank_connect.wasm
export PATH := $(HOME)/.cargo/bin:$(PATH)
# The panic locations the .wasm keeps name dependency sources by their path on the build machine
# (under CARGO_HOME): mapped to paths that are the same on every machine, so the published .wasm
# holds no home directory and builds the same bytes wherever it is built.
CARGO_DIR := $(or $(CARGO_HOME),$(HOME)/.cargo)
REMAP := --remap-path-prefix=$(CARGO_DIR)/registry/src/=crates/ --remap-path-prefix=$(CURDIR)/=

comma := ,
# -Oz run until it shrinks no more (--converge); the producers (toolchain versions) and
# target_features custom sections are dropped: no runtime reads them. --low-memory-unused lets
# `load(p + c)` (c < 1 KiB) become `load offset=c (p)`: the two differ only when p + c wraps
# past 4 GiB into the low 1 KiB, which no pointer here does (the memory is a few MiB; Rust's
# stack runs down from 1 MiB and would need over 1,000 KiB of depth to reach it): 250 B gzipped.
# --one-caller-inline-max-function-size=20: a function with one caller is inlined into it only
# when small (binaryen's default: at any size). The .wasm is ~2 KB larger raw but ~1 KB smaller
# gzipped: kept as functions of their own, they compress better than inlined (any limit
# from 5 to 100 measured 800-1,000 B less; 20 the least). --reorder-functions-by-name: the code
# section in the order of the functions' Rust paths (the package build keeps the names until
# wasm-opt, which drops them), so that a module's functions, alike, sit together where gzip's
# window finds their likeness: ~240 B gzipped.
WASM_OPT_FLAGS := -Oz --converge --low-memory-unused --one-caller-inline-max-function-size=20 \
  --reorder-functions-by-name --strip-producers --strip-target-features \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue
step = @printf '\n==> %s\n' "$(1)"

.PHONY: help setup setup-rust setup-js setup-browser setup-redis package worker-example size demo serve test test-rust test-wasm test-js lint clean bench wasm-floor soak reliability fuzz fuzz-check fuzz-libfuzzer

help:
	@echo "make demo   - build the package and run the demo"
	@echo "make serve  - the demo, left running: the sandbox and the Worker, with the page to open"
	@echo "make test   - build the package and run every test"
	@echo "make size   - print the .wasm and JS glue sizes, raw and gzipped"
	@echo "make bench  - benchmark ours against a JS floor and two OAuth libraries (writes bench/results.md)"
	@echo "make reliability - fault matrix, leak scanner, fuzzing, soak: the README's Reliability figures"
	@echo "make clean  - remove build outputs"

## ---- set-up (each step checks first, so a second run skips what is there) ----

setup: setup-rust setup-js

setup-rust:
	$(call step,Rust target $(WASM_TARGET))
	@if rustup target list --installed | grep -qx '$(WASM_TARGET)'; then echo "   already installed"; \
	 else rustup target add $(WASM_TARGET); fi
	$(call step,wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (must equal the wasm-bindgen crate pin))
	@have=$$(wasm-bindgen --version 2>/dev/null | awk '{print $$2}' || true); \
	 if [ "$$have" = "$(WASM_BINDGEN_VERSION)" ]; then echo "   already installed ($$have)"; \
	 else echo "   installing (found '$${have:-none}'; takes about 2 minutes)"; \
	      cargo install wasm-bindgen-cli --version =$(WASM_BINDGEN_VERSION); fi

# npm ci: exactly what package-lock.json pins (it holds every platform's optional packages, so it
# is complete and npm ci never rewrites it). The stamp makes a second run skip it until
# package.json or the lockfile changes.
setup-js: node_modules/.qbank-installed

node_modules/.qbank-installed: package.json package-lock.json
	$(call step,JavaScript tools from package-lock.json (npm ci))
	npm ci --no-audit --no-fund
	@touch $@

# Debian's Chromium, for the browser tests in tests/js/runtimes.test.mjs (not needed for demo).
setup-browser:
	$(call step,Chromium for the browser tests (Debian's chromium package))
	@if command -v chromium >/dev/null; then echo "   already installed ($$(chromium --version 2>/dev/null))"; \
	 else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi

# Debian's redis-server, for the store tests (tests/js/adapters.test.mjs starts its own on a free
# loopback port through tests/servers/redis.mjs; nothing runs as a service).
setup-redis:
	$(call step,redis-server for the store tests (Debian's redis-server package))
	@if command -v redis-server >/dev/null; then echo "   already installed ($$(redis-server --version 2>/dev/null | cut -d' ' -f1-3))"; \
	 else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; fi

## ---- build ----

package: setup
	$(call step,cargo build --release --target $(WASM_TARGET) --features wasm-panic-trap (no_std))
	RUSTFLAGS="$${RUSTFLAGS:-} $(REMAP)" cargo build --release --target $(WASM_TARGET) --features wasm-panic-trap
	$(call step,wasm-bindgen --target web (--keep-debug: the names panic-stubs.mjs reads; wasm-opt drops them))
	rm -rf $(RAW) && wasm-bindgen --target web --omit-default-module-path --keep-debug --out-dir $(RAW) $(WASM_OUT)
	$(call step,panic paths trap at once: no panic message built (pkg-template/panic-stubs.mjs))
	node pkg-template/panic-stubs.mjs $(RAW)/qbank_connect_bg.wasm
	$(call step,wasm-opt -Oz)
	$(BIN)/wasm-opt $(WASM_OPT_FLAGS) $(RAW)/qbank_connect_bg.wasm -o $(RAW)/qbank_connect_bg.wasm
	$(call step,the panic data no code reads any more zeroed (pkg-template/panic-data.mjs))
	node pkg-template/panic-data.mjs $(RAW)/qbank_connect_bg.wasm
	$(call step,pkg/ from pkg-template/)
	node pkg-template/build.mjs $(RAW) pkg
	@$(MAKE) --no-print-directory size

size:
	@node tests/js/size.mjs pkg

# worker-example/: link ../pkg into its node_modules (once) and bundle the Worker with wrangler
# into worker-example/dist (every time: about a second, no network).
worker-example: package
	$(call step,worker-example: link ../pkg (npm install --offline) and wrangler deploy --dry-run --outdir dist)
	node tests/js/examples.mjs build

## ---- demo ----

demo: worker-example
	$(call step,demo)
	node tests/js/demo.mjs

serve: worker-example
	$(call step,serve (Ctrl-C stops))
	node tests/js/demo.mjs --serve

## ---- tests ----

test: package lint fuzz-check test-rust test-wasm test-js
	@printf '\n==> all tests passed\n'

lint: setup-js
	$(call step,layers: each folder under src/ uses only the layers below it (tests/layers.mjs))
	node tests/layers.mjs --self-test
	node tests/layers.mjs src
	$(call step,tsc --checkJs (strict): the JavaScript half (src/js/support.js$(comma) store.js$(comma) node-http.js$(comma) adapters.js))
	$(BIN)/tsc -p tsconfig.checkjs.json
	$(call step,cargo fmt --check)
	cargo fmt --check
	$(call step,cargo clippy (host) -D warnings)
	cargo clippy --all-targets -- -D warnings
	$(call step,cargo clippy ($(WASM_TARGET)) -D warnings)
	cargo clippy --all-targets --target $(WASM_TARGET) -- -D warnings
	$(call step,cargo clippy ($(WASM_TARGET)$(comma) no_std package build) -D warnings)
	cargo clippy --lib --target $(WASM_TARGET) --features wasm-panic-trap -- -D warnings
	$(call step,cargo doc -D warnings)
	RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --quiet
	$(call step,bench/wasm-floor: cargo fmt --check / clippy -D warnings)
	cargo fmt --check --manifest-path bench/wasm-floor/Cargo.toml
	cargo clippy --target $(WASM_TARGET) --manifest-path bench/wasm-floor/Cargo.toml --target-dir $(WASM_FLOOR) -- -D warnings

test-rust:
	$(call step,Rust host tests (the sans-IO layers util$(comma) oauth$(comma) providers; manual clock))
	cargo test

test-wasm:
	$(call step,wasm-bindgen-test in Node)
	cargo test --target $(WASM_TARGET)

# Under the leak scanner (tests/leaks/README.md): every error, event, printed object and line of
# output the package produced is searched for every secret and issued token; any leak fails.
test-js: setup-browser setup-redis
	$(call step,JavaScript tests under the leak scanner (Node test runner$(comma) plus Deno$(comma) Bun and workerd through the built package))
	rm -rf target/reliability/fault-matrix target/reliability/bad-config
	node --require ./tests/leaks/register.cjs --test --test-concurrency=1 tests/js/ tests/servers/ tests/leaks/

## ---- benchmark ----

# Phase 6's reference row: bench/wasm-floor (one async method, nothing of ours), built like the
# package, so the size bar can be read against what the toolchain costs by itself.
WASM_FLOOR := target/wasm-floor
wasm-floor: setup
	$(call step,bench/wasm-floor: the toolchain's floor (cargo build$(comma) wasm-bindgen$(comma) wasm-opt))
	RUSTFLAGS="$${RUSTFLAGS:-} $(REMAP)" cargo build --release --target $(WASM_TARGET) \
	  --manifest-path bench/wasm-floor/Cargo.toml --target-dir $(WASM_FLOOR)
	rm -rf $(WASM_FLOOR)/pkg && wasm-bindgen --target web --omit-default-module-path \
	  --out-dir $(WASM_FLOOR)/pkg $(WASM_FLOOR)/$(WASM_TARGET)/release/wasm_floor.wasm
	$(BIN)/wasm-opt $(WASM_OPT_FLAGS) $(WASM_FLOOR)/pkg/wasm_floor_bg.wasm -o $(WASM_FLOOR)/pkg/wasm_floor_bg.wasm

# BENCH_ARGS: e.g. --quick, --runtimes node,deno, --phases 4,5, --rounds 9 (see bench/README.md).
bench: package wasm-floor setup-redis
	$(call step,benchmark on Node$(comma) Deno and workerd side by side (9-13 minutes; --quick about 2))
	node bench/run.mjs $(BENCH_ARGS)

## ---- reliability ----

soak: package
	$(call step,soak: 1M cached getToken (fast path and wasm) + 100k getBalance + 2000 of each token lifecycle)
	@mkdir -p target/soak
	node --expose-gc tests/soak/soak.mjs --json target/soak/soak.json

## ---- fuzzing (fuzz/: its own workspace, never part of the wasm build) ----

# Seconds per target; 10 targets, so the default is about 3 minutes with the build.
FUZZ_SECONDS ?= 15

fuzz:
	$(call step,fuzz the core parsers: $(FUZZ_SECONDS) s per target (stable Rust; figures in target/fuzz-summary.json))
	cd fuzz && cargo run --release --quiet --bin qbank-fuzz -- --seconds $(FUZZ_SECONDS) --summary ../target/fuzz-summary.json

# The fuzz crate's own format, lints and tests (`make lint` and `cargo test` do not see it).
fuzz-check:
	$(call step,fuzz/: cargo fmt --check / clippy -D warnings / cargo test)
	cd fuzz && cargo fmt --check && cargo clippy --all-targets -- -D warnings && cargo test --release

# Coverage-guided: the same targets under libFuzzer with AddressSanitizer, through cargo-fuzz
# (installed from crates.io on first use). RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# the -Z flags cargo-fuzz passes, so no nightly is needed.
fuzz-libfuzzer:
	$(call step,cargo fuzz (libFuzzer + ASan): $(FUZZ_SECONDS) s per target)
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@for t in $$(cd fuzz && cargo run --release --quiet --bin qbank-fuzz -- list); do \
	  mkdir -p target/fuzz-corpus/$$t; \
	  if RUSTC_BOOTSTRAP=1 cargo fuzz run --features libfuzzer $$t target/fuzz-corpus/$$t fuzz/corpus/$$t \
	       -- -max_total_time=$(FUZZ_SECONDS) > target/fuzz-libfuzzer-$$t.log 2>&1; \
	  then printf '   %-17s %s\n' $$t "$$(grep -E '^Done' target/fuzz-libfuzzer-$$t.log)"; \
	  else tail -30 target/fuzz-libfuzzer-$$t.log; echo "   $$t crashed: input in fuzz/artifacts/$$t/"; exit 1; fi; \
	done

# Everything behind the README's Reliability figures: the JavaScript suite under the leak scanner
# (fault matrix, bad configurations), fuzzing, the soak; then the figures, checked.
reliability: package test-js fuzz soak
	$(call step,reliability figures: fault cases$(comma) bad configurations$(comma) strings scanned$(comma) fuzzing$(comma) soak)
	node tests/reliability/figures.mjs --check

clean:
	rm -rf target/pkg-raw pkg worker-example/dist bench/work
