"""``python -m faultlens.cli``: the `faultlens` command."""

from . import main

main()
