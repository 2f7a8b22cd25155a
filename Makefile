# `make demo` and `make test` work on a fresh machine: they create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := demo-out

.PHONY: demo test lint install browser clean

# Only the tests need a browser: the HTML report test renders the page in a real headless Chromium
# (a Debian package, so installing it needs root). `make demo` needs neither root nor a browser.
CHROMIUM = $(shell command -v chromium-headless-shell || command -v chromium)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	# Bytecode, as a wheel's install writes it: an editable install under PYTHONDONTWRITEBYTECODE=1
	# would compile voxmill's modules again at every command (0.15 s of each start).
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

install: $(STAMP)

browser:
	test -n "$(CHROMIUM)" || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell)

# The main job on data made here: a 12-clip, two-speaker corpus of real speech (bundled Piper voice)
# prepared into a Piper training folder, HF parquet and NeMo manifests; then a look at the result.
# Then a 2-minute recording of the same voice through the pitch voice changer (+4 semitones),
# and a paragraph read aloud (with subtitles). Then a short audiobook (scripts/audiobook.md read by the same
# voice, with chapter and paragraph pauses) cut into clips aligned to its text, and checked: READY.
# Last, the server: one speech and one transcription request to `voxmill serve` with curl, the models it
# holds (/api/ps), then it stops.
demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/python scripts/make_demo_corpus.py $(DEMO_DIR)/corpus 12
	$(BIN)/voxmill prepare $(DEMO_DIR)/corpus::dialect=demo -o $(DEMO_DIR)/dataset -f piper -f hf -f nemo \
		--val-fraction 0.2 --espeak-voice en-us
	$(BIN)/voxmill info $(DEMO_DIR)/corpus/wavs/clip0000.wav $(DEMO_DIR)/dataset/wavs/clip0000.wav
	$(BIN)/python scripts/make_demo_recording.py $(DEMO_DIR)/recording.flac 2
	$(BIN)/voxmill convert $(DEMO_DIR)/recording.flac $(DEMO_DIR)/recording-pitch+4.mp3 -p pitch --semitones 4
	$(BIN)/voxmill info $(DEMO_DIR)/recording.flac $(DEMO_DIR)/recording-pitch+4.mp3
	$(BIN)/voxmill synth -i scripts/paragraph.txt -o $(DEMO_DIR)/paragraph.mp3 --srt
	$(BIN)/voxmill info $(DEMO_DIR)/paragraph.mp3
	$(BIN)/python scripts/make_audiobook.py scripts/audiobook.md $(DEMO_DIR)/audiobook.wav $(DEMO_DIR)/audiobook-truth.json
	$(BIN)/voxmill segment $(DEMO_DIR)/audiobook.wav --text scripts/audiobook.md -o $(DEMO_DIR)/segmented
	head -n 3 $(DEMO_DIR)/segmented/metadata.csv
	$(BIN)/voxmill check $(DEMO_DIR)/segmented
	scripts/demo_serve.sh $(BIN) $(DEMO_DIR)

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts $(wildcard benchmarks)
	$(BIN)/ruff format --check src tests scripts $(wildcard benchmarks)
	$(BIN)/mypy
	$(PYTHON) ../shared/tools/check_layers.py src/voxmill

test: lint browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
