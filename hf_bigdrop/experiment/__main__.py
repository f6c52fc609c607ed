"""`python -m hf_bigdrop.experiment <command> ...`: the same as the `hf-bigdrop` command (see `cli`)."""

from .cli import main

main()
