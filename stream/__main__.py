"""``python -m stream`` is the ``appraise`` command."""

from stream.cli.main import main

main()
