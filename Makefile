# The two commands in the README. Both set up .venv first (fast when it is already there).
.PHONY: setup demo test

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/deploy build --model all --data demo --alpha 0.5 --out build/demo

test:
	./scripts/setup.sh test
	./scripts/setup-system.sh
	./scripts/setup-arm-emu.sh all
	./scripts/setup-arm-board.sh
	.venv/bin/pytest
