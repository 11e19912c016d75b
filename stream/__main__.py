"""``python -m stream`` is the ``appraise`` command."""

from stream.cli import main

main()
