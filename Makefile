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

# The repo-scale table runs the `pyro` CLI next to pyro-bench, so both are built first
# (`cargo run --bin pyro-bench` alone would leave a stale `pyro` in place).
bench:
	$(CARGO) build --release --locked -p pyro --bins
	target/release/pyro-bench --write docs/benchmarks.md
