# facegate's two front doors:
#   make dev    set up, build, start the local stack and run every role (Ctrl-C stops it all)
#   make test   format check, lints, and every test against the real emulator and face engine
#   make demo   (with `make dev` running in another terminal) the whole story, step by step
# Everything is installed inside the checkout (.venv/, .facegate/); see README.md.

SHELL := /bin/bash
.DEFAULT_GOAL := help
# The ONNX Runtime library inside .venv (resolved after setup has run).
ORT_LIB = $$(ls $(CURDIR)/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)
CARGO ?= cargo
# The verifier's bearer token under `make dev`, which `make demo` presents. A fixed, local-only
# value (the verifier listens on 127.0.0.1); export FACEGATE_VERIFIER_TOKEN to choose another.
FACEGATE_VERIFIER_TOKEN ?= facegate-local-dev-token

.PHONY: help setup build dev demo test deploy-check stack-start stack-stop bench-engine bench-pipeline bench-verifier bench-cognito bench-soak bench-gate bench-liveness calibrate

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

setup: ## install the emulator, ONNX Runtime and the face models into the checkout
	@scripts/setup.sh

build: setup ## build the facegate binary (debug)
	$(CARGO) build --bin facegate

dev: build ## run everything locally: stack, engine, provisioning, every role
	@FACEGATE_STACK_PERSIST=1 scripts/stack.sh start
	@echo "[dev] stop with Ctrl-C; the emulator keeps running (make stack-stop stops it)"
	ORT_DYLIB_PATH="$(ORT_LIB)" FACEGATE_VERIFIER_TOKEN="$(FACEGATE_VERIFIER_TOKEN)" \
	  ./target/debug/facegate dev

demo: build ## the whole story, step by step, against a running `make dev` (start that first)
	@scripts/stack.sh status >/dev/null 2>&1 || { \
	  echo "[demo] the local stack is not running: start 'make dev' in another terminal first"; exit 1; }
	FACEGATE_VERIFIER_TOKEN="$(FACEGATE_VERIFIER_TOKEN)" ./target/debug/facegate demo

test: setup ## every check CI runs: fmt, clippy, unit and integration tests
	$(CARGO) fmt --all -- --check
	deploy/validate.sh
	@started=0; \
	if ! scripts/stack.sh status >/dev/null 2>&1; then scripts/stack.sh start && started=1; fi; \
	export ORT_DYLIB_PATH="$(ORT_LIB)"; \
	status=0; \
	$(CARGO) clippy --workspace --all-targets -- -D warnings || status=$$?; \
	if [ $$status = 0 ]; then $(CARGO) test --workspace --no-fail-fast || status=$$?; fi; \
	if [ $$started = 1 ]; then scripts/stack.sh stop; fi; \
	exit $$status

deploy-check: ## lint the CloudFormation templates, render and validate the Kubernetes manifests
	@deploy/validate.sh

stack-start: setup ## start the local AWS emulator (state kept in .facegate/ministack)
	@FACEGATE_STACK_PERSIST=1 scripts/stack.sh start

stack-stop: ## stop the local AWS emulator
	@scripts/stack.sh stop

bench-engine: setup ## the face engine benchmark (release build, with the Python/OpenCV reference)
	@.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements-bench.txt
	$(CARGO) build --release --bin facegate
	ORT_DYLIB_PATH="$(ORT_LIB)" ./target/release/facegate bench engine

bench-pipeline: setup ## the registration pipeline benchmark (release build; starts the stack and an engine)
	$(CARGO) build --release --bin facegate
	ORT_DYLIB_PATH="$(ORT_LIB)" scripts/with-engine.sh ./target/release/facegate bench pipeline

bench-verifier: setup ## the Verify-challenge benchmark (release build; starts the stack and an engine)
	$(CARGO) build --release --bin facegate
	ORT_DYLIB_PATH="$(ORT_LIB)" scripts/with-engine.sh \
	  env FACEGATE_PREFIX=fg-bench-verifier FACEGATE_FACE_CALLS_PER_SECOND=500 FACEGATE_FACE_CALLS_BURST=500 sh -c './target/release/facegate provision && ./target/release/facegate bench verifier'

bench-cognito: setup ## a face sign-in through the Cognito user pool and trigger Lambda vs. direct (release build; starts the stack and an engine)
	$(CARGO) build --release --bin facegate
	ORT_DYLIB_PATH="$(ORT_LIB)" scripts/with-engine.sh \
	  env FACEGATE_PREFIX=fg-bench-cognito FACEGATE_LIVENESS_POLICY=off FACEGATE_FACE_CALLS_PER_SECOND=500 FACEGATE_FACE_CALLS_BURST=500 sh -c './target/release/facegate provision && ./target/release/facegate bench cognito'

# LIVENESS=aws-face-liveness runs the suite through the engine's Face Liveness stand-in.
LIVENESS ?= active
# A stack per mode: a trigger Lambda already running keeps the environment it started with.
BENCH_LIVENESS_PREFIX = fg-bench-liveness$(if $(filter aws-face-liveness,$(LIVENESS)),-aws,)
bench-liveness: setup ## the liveness attack suite through the user pool: APCER per attack kind, BPCER (release build; starts the stack and an engine; LIVENESS=aws-face-liveness for that mode)
	$(CARGO) build --release --bin facegate
	ORT_DYLIB_PATH="$(ORT_LIB)" scripts/with-engine.sh \
	  env FACEGATE_PREFIX=$(BENCH_LIVENESS_PREFIX) FACEGATE_LIVENESS_POLICY=$(LIVENESS) FACEGATE_CHALLENGE_TTL_SECS=30 FACEGATE_FACE_CALLS_PER_SECOND=500 FACEGATE_FACE_CALLS_BURST=500 \
	  sh -c './target/release/facegate provision && if [ "$(LIVENESS)" = aws-face-liveness ]; then export FACEGATE_LIVENESS_STAND_IN_URL="$$AWS_ENDPOINT_URL_REKOGNITION"; fi; ./target/release/facegate bench liveness'

# The soak starts (and, on its chaos schedule, restarts) an emulator of its own on a free port:
# the one on 4566 is left alone. SEED=<n> repeats a printed chaos schedule.
bench-soak: setup ## load and chaos: both flows at once, every role (and the emulator) killed on a seeded schedule, the audit (release build)
	$(CARGO) build --release --bin facegate
	ORT_DYLIB_PATH="$(ORT_LIB)" ./target/release/facegate bench soak $(if $(SEED),--seed $(SEED),)

bench-gate: build ## the quality gates' refusal table: every labelled photo and its variants, each refusal's reason
	ORT_DYLIB_PATH="$(ORT_LIB)" ./target/debug/facegate bench gate

calibrate: build ## similarity of every labelled photo pair, and FMR/FNMR per threshold
	ORT_DYLIB_PATH="$(ORT_LIB)" ./target/debug/facegate calibrate tests/fixtures/faces
