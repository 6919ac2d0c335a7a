# Everything a developer runs. `make run` and `make test` work on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run seed shell serve test lint fmt typecheck layers i18n migration bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## Run the product on the embedded default (SQLite, demo data, a generated dev keyring)
run: seed
	$(BIN)/selfcare shell --chat-id 1

seed: venv
	$(BIN)/selfcare demo seed

shell: venv
	$(BIN)/selfcare shell --chat-id $${CHAT:-1}

serve: seed
	$(BIN)/selfcare serve

## The whole test suite: every storage test on SQLite and on PostgreSQL
test: venv
	$(BIN)/python -m pytest -q -n 3

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv
	$(BIN)/mypy core storage bot

layers: venv
	$(BIN)/lint-imports

## Re-extract messages and merge them into the Thai and English catalogues
i18n: venv
	$(BIN)/pybabel extract -F babel.cfg -o locales/messages.pot --no-location --sort-output .
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D selfcare --no-fuzzy-matching

## Until the first release the schema is one migration, regenerated from storage/tables*.py
migration: venv
	rm -f var/migration-dev.db storage/migrations/versions/0001_initial_schema.py
	mkdir -p var/migration-kept
	# Every revision left after 0001 is hand-written (triggers: 0002, 0003 …): they sit out
	# the regeneration.
	mv storage/migrations/versions/*.py var/migration-kept/
	$(BIN)/alembic revision --autogenerate -m "initial schema" --rev-id 0001 >/dev/null; \
	  status=$$?; mv var/migration-kept/*.py storage/migrations/versions/; exit $$status
	rm -f var/migration-dev.db
	@echo "storage/migrations/versions/0001_initial_schema.py regenerated"

bench: venv
	$(BIN)/python bench/crypto.py --write-docs
	$(BIN)/python bench/import.py --write-docs
	$(BIN)/python bench/broadcast.py --write-docs
	$(BIN)/python bench/webhook.py --write-docs

## Long fuzzing: the Hypothesis tests in tests/fuzz with the `fuzz` profile (FUZZ_EXAMPLES
## examples a test), then each atheris harness in fuzz/ for FUZZ_SECONDS (corpora and
## crashes under var/fuzz/). `make test` runs the same Hypothesis tests, bounded.
FUZZ_SECONDS ?= 60
FUZZ_EXAMPLES ?= 5000
FUZZ_HARNESSES = $(sort $(basename $(notdir $(filter-out fuzz/_%,$(wildcard fuzz/*.py)))))

fuzz: venv
	$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/pip install -q -e '.[test,fuzz]'
	@echo "== hypothesis: tests/fuzz, profile fuzz, $(FUZZ_EXAMPLES) examples a test"
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
	  $(BIN)/python -m pytest -q tests/fuzz --hypothesis-show-statistics
	@for harness in $(FUZZ_HARNESSES); do \
	  echo "== atheris: fuzz/$$harness.py for $(FUZZ_SECONDS) s (var/fuzz/$$harness/)"; \
	  $(BIN)/python -m fuzz.$$harness -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    || exit 1; \
	done

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
