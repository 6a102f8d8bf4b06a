# pyro's checks. `make check` is the README's test command; CI runs `make check dist-check`.
.PHONY: setup check lint test dist-check bench

CARGO ?= cargo

setup:
	scripts/setup

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

test:
	$(CARGO) test --locked --workspace --no-fail-fast

check: lint test

dist-check:
	scripts/dist-check

bench:
	$(CARGO) run --release --locked -p pyro --bin pyro-bench -- --write docs/benchmarks.md
