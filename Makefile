# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv if missing, install torch==2.13.0 first (the CPU wheel; any other
# torch spec pulls gigabytes of CUDA), then the project with its extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgegen-installed

.PHONY: demo test install clean apt-deps web-deps native native-asan native-testdata native-test valgrind

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/edgegen demo

test: $(STAMP) native native-asan native-testdata web-deps fuzz-build
	EDGEGEN_REQUIRE_FUZZ=1 $(BIN)/python -m pytest -q --durations=10
	$(MAKE) --no-print-directory native-test

# --- the web page (web/): onnxruntime-web from the npm registry, pinned by web/package-lock.json;
# the browser tests (tests/web) drive Debian's chromium (APT_PKGS) with Playwright (the test extra).
web-deps: web/node_modules/.package-lock.json
web/node_modules/.package-lock.json: web/package-lock.json web/package.json
	@command -v npm >/dev/null || { echo "web-deps: npm is not installed (Node.js 20 with npm)"; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error

# --- the native runtime (CMakeLists.txt): libedgegen, edgegen-run, examples, C++ tests ------
# apt packages the C++ build needs; installed only when dpkg says one is missing.
# clang-14: Debian 12's clang; its libFuzzer and sanitizers build the fuzz harnesses (fuzz-build)
APT_PKGS := cmake ninja-build g++ pkg-config nlohmann-json3-dev libgtest-dev libssl-dev libpng-dev valgrind dataset-fashion-mnist \
    chromium clang-14
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
NATIVE := build/native
NATIVE_ASAN := build/native-asan
NATIVE_TSAN := build/native-tsan
TEST_BUNDLE := build/testdata/ddpm-tiny
TOKEN_BUNDLE := build/testdata/dalle-tiny
LDM_BUNDLE := build/testdata/ldm-tiny
OV_CMAKE = $$($(BIN)/python -c 'import openvino, os; print(os.path.dirname(openvino.__file__))')/cmake
CMAKE_CONFIGURE = cmake -S . -G Ninja -DOpenVINO_DIR=$(OV_CMAKE) -Wno-dev --log-level=WARNING

apt-deps:
	@missing=$$(for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "apt-get install $$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

native: $(STAMP) apt-deps
	@test -f $(NATIVE)/build.ninja || $(CMAKE_CONFIGURE) -B $(NATIVE) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(NATIVE) -j2

# AddressSanitizer + UndefinedBehaviorSanitizer build of the library, CLI, example and tests.
native-asan: $(STAMP) apt-deps
	@test -f $(NATIVE_ASAN)/build.ninja || $(CMAKE_CONFIGURE) -B $(NATIVE_ASAN) -DCMAKE_BUILD_TYPE=Debug -DEDGEGEN_SANITIZE=ON
	cmake --build $(NATIVE_ASAN) -j2

# ThreadSanitizer build, then the concurrency and cancellation tests under it (Threads.*, Token*,
# ProgressTest.Cancel*; the build alone takes about 10 min on 2 cores, so it is not part of
# `make test`; see docs/notes/issue-17-tokens.md). OpenVINO and oneTBB are not instrumented:
# runtimes/native/tsan.supp drops the reports from inside them.
native-tsan: $(STAMP) apt-deps native-testdata
	@test -f $(NATIVE_TSAN)/build.ninja || $(CMAKE_CONFIGURE) -B $(NATIVE_TSAN) -DCMAKE_BUILD_TYPE=Debug -DEDGEGEN_TSAN=ON
	cmake --build $(NATIVE_TSAN) -j2
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/runtimes/native/tsan.supp \
	    ctest --test-dir $(NATIVE_TSAN) -j1 --output-on-failure -R '^(Threads|Token|ProgressTest.Cancel)'

# The tiny bundles the C++ tests sample from (trained and exported once: the DDPM in about 30 s,
# the DALL-E token model in about 60 s, the latent text-to-image model (with its stored image-to-image
# and inpainting plans) in about 60 s; `rm -rf build/testdata` makes the next run rebuild them,
# e.g. after a bundle format change).
native-testdata: $(TEST_BUNDLE)/manifest.json $(TOKEN_BUNDLE)/manifest.json $(LDM_BUNDLE)/manifest.json
$(TEST_BUNDLE)/manifest.json: | $(STAMP)
	rm -rf build/testdata/runs/ddpm-tiny
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/edgegen train ddpm --preset tiny --train.threads 1 --quiet \
	    --out build/testdata/runs/ddpm-tiny
	OMP_NUM_THREADS=1 $(BIN)/edgegen export build/testdata/runs/ddpm-tiny --format onnx,openvino --quiet \
	    --out $(TEST_BUNDLE)
# (prompt models: rebuilt when the tokenizer conversion changes, so they carry tokenizer.xml, issue 17)
$(TOKEN_BUNDLE)/manifest.json: export/tokenizer_export.py | $(STAMP)
	rm -rf build/testdata/runs/dalle-tiny
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/edgegen train dalle --preset tiny --train.threads 1 --quiet \
	    --out build/testdata/runs/dalle-tiny
	OMP_NUM_THREADS=1 $(BIN)/edgegen export build/testdata/runs/dalle-tiny --format onnx,openvino --quiet \
	    --out $(TOKEN_BUNDLE)
$(LDM_BUNDLE)/manifest.json: export/tokenizer_export.py | $(STAMP)
	rm -rf build/testdata/runs/ldm-tiny
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/edgegen train ldm --preset tiny --train.threads 1 --quiet \
	    --out build/testdata/runs/ldm-tiny
	OMP_NUM_THREADS=1 $(BIN)/edgegen export build/testdata/runs/ldm-tiny --format onnx,openvino --quiet \
	    --out $(LDM_BUNDLE)

# ctest of both builds; leak checking stays on (ASan's default); UBSan aborts on the first finding.
native-test: native native-asan native-testdata
	ctest --test-dir $(NATIVE) -j2 --output-on-failure
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --test-dir $(NATIVE_ASAN) -j2 --output-on-failure

# valgrind on one edgegen-run call (DDIM-50, one sample of the tiny bundle; about 5 min, see README).
# Leaks counted as errors: definite and indirect ("possibly lost" blocks are the thread-local
# storage of OpenVINO's and TBB's worker threads, still running at exit); suppressions:
# runtimes/native/valgrind.supp (one glibc ld.so false positive).
valgrind: native native-testdata
	@start=$$(date +%s); \
	valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --suppressions=runtimes/native/valgrind.supp \
	    $(NATIVE)/edgegen-run $(TEST_BUNDLE) --sampler ddim --steps 50 --n 1 --seed 0 --out build/valgrind.png; \
	status=$$?; echo "valgrind: exit $$status after $$(( $$(date +%s) - start )) s"; exit $$status

clean:
	rm -rf demo bundles .pytest_cache

# --- fuzzing (issue 20): libFuzzer harnesses under ASan + UBSan (clang 14 from Debian), then the
# Hypothesis fuzz tests with many examples. FUZZ_SECONDS per harness (default 300); findings land in
# build/fuzz/findings/ (crash-*, reproduce with build/fuzz/fuzz_<name> <file>). `make test` builds them
# and runs the four at once for 20 s (tests/security/test_libfuzzer.py, EDGEGEN_LIBFUZZER_SECONDS);
# fuzz_sample samples from $(TEST_BUNDLE) (EDGEGEN_FUZZ_BUNDLE).
FUZZ := build/fuzz
FUZZ_SECONDS ?= 300
FUZZ_EXAMPLES ?= 3000
.PHONY: fuzz fuzz-build durability
fuzz-build: $(STAMP) apt-deps
	@test -f $(FUZZ)/build.ninja || $(CMAKE_CONFIGURE) -B $(FUZZ) -DCMAKE_BUILD_TYPE=Debug -DEDGEGEN_FUZZ=ON \
	    -DEDGEGEN_BUILD_TESTS=OFF -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14
	cmake --build $(FUZZ) -j2 --target fuzz_manifest fuzz_plan fuzz_onnx fuzz_sample

fuzz: fuzz-build native-testdata
	@mkdir -p $(FUZZ)/findings
	@for h in manifest plan onnx sample; do mkdir -p $(FUZZ)/corpus/$$h; \
	  EDGEGEN_FUZZ_BUNDLE=$(TEST_BUNDLE) $(FUZZ)/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
	    -artifact_prefix=$(FUZZ)/findings/$$h- $(FUZZ)/corpus/$$h runtimes/native/fuzz/corpus/$$h \
	    > $(FUZZ)/$$h.log 2>&1; rc=$$?; grep -E '^#[0-9]+.*DONE|ERROR|SUMMARY' $(FUZZ)/$$h.log; \
	  test $$rc = 0 || exit 1; done
	EDGEGEN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/security/test_fuzz.py

# Kill and disk-full tests with many random kill points, and the kill points at the swap of a real
# export (a whole export each; `make test` runs 1 random kill per command). KILL_RUNS per command.
KILL_RUNS ?= 20
durability: $(STAMP) native-testdata
	EDGEGEN_KILL_RUNS=$(KILL_RUNS) OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -s tests/security/test_durability.py

# Time to quality (issue 19): latency per sample at batch 1 and 16 against FID on the small DDPM,
# every backend x precision x executor x sampler x steps and the peers, in one run (about 2 h on
# 2 cores shared at load ~17; the committed run split its --phase list over parallel processes,
# 65 min wall; a rerun continues from /tmp/edgegen-frontier/frontier-raw.*.json). Writes
# benchmarks/frontier.md, frontier.json and frontier.png.
.PHONY: bench-frontier
bench-frontier: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/frontier.py

# The same on the base DDPM (runs/ddpm-base: `edgegen train ddpm --preset base`, about 85 min on 2
# free cores, then `edgegen export runs/ddpm-base`), on a shorter list (frontier.py use_base_preset;
# about 40 min on one core). Writes benchmarks/frontier_base.md, .json and .png.
.PHONY: bench-frontier-base
bench-frontier-base: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/frontier.py --preset base

# The same on the small LDM (bundles/ldm-small, prompts -> Fashion-MNIST images): the whole prompt -> image
# pipeline, gated bf16 and int8 of the denoiser, the fast samplers, and the diffusers + onnxruntime and torch
# loops with CFG (edgegen/profiling/baselines_ldm.py). Writes benchmarks/frontier_ldm.md, .json and .png.
.PHONY: bench-frontier-ldm
bench-frontier-ldm: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/frontier_ldm.py

# throughput mode vs latency mode, batch 16, 1 and 2 threads/streams (issue 19; a few minutes)
.PHONY: bench-throughput
bench-throughput: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/throughput.py

# Stable-Diffusion-1.5-shaped import (issue 16): random weights from SD 1.5's published configs
# (860 M-parameter UNet: ONNX external data), import + parity gate + a few sampling steps, import
# time and peak memory. Measured: 18 min, 11.7 GB peak, ~13 GB disk (ONNX only; OpenVINO adds a
# copy of the weights: SD15_ARGS="--formats onnx,openvino" on a bigger machine, "--width-scale 0.25"
# on a smaller one). Writes benchmarks/sd15_import.md.
SD15_ARGS ?= --formats onnx --gate-steps 1 --sample-steps 2
.PHONY: bench-sd15
bench-sd15: $(STAMP)
	OMP_NUM_THREADS=2 $(BIN)/python benchmarks/sd15_import.py $(SD15_ARGS) --out benchmarks/sd15_import.md

# Anchor comparison (issue 19): optimum-onnx, optimum-intel and openvino-genai against edgegen on one
# imported SD-1.5-shaped pipeline (random weights, reduced width), each exported by its own tool.
# The peers live in .venv-anchors (torch==2.13.0 CPU first, then benchmarks/anchors-requirements.txt
# with torch held by a constraint), so the project's pins are untouched. Writes benchmarks/anchors.md/.json.
ANCHORS_VENV := .venv-anchors
ANCHORS_STAMP := $(ANCHORS_VENV)/.anchors-installed
ANCHORS_ARGS ?=
$(ANCHORS_STAMP): benchmarks/anchors-requirements.txt
	test -x $(ANCHORS_VENV)/bin/python || $(PYTHON) -m venv $(ANCHORS_VENV)
	echo '*' > $(ANCHORS_VENV)/.gitignore
	$(ANCHORS_VENV)/bin/pip install --quiet torch==2.13.0
	echo 'torch==2.13.0' > $(ANCHORS_VENV)/torch-constraint.txt
	$(ANCHORS_VENV)/bin/pip install --quiet -c $(ANCHORS_VENV)/torch-constraint.txt -r benchmarks/anchors-requirements.txt
	touch $(ANCHORS_STAMP)
.PHONY: anchors-venv bench-anchors
anchors-venv: $(ANCHORS_STAMP)
bench-anchors: $(STAMP) $(ANCHORS_STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/anchors.py --peer-python $(ANCHORS_VENV)/bin/python $(ANCHORS_ARGS)
