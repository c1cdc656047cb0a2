"""`python -m mixbench ...` is the `mixbench` command (and what torchrun's -m starts)."""

from mixbench.cli import main

main()
