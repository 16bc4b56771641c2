"""``python -m trainmon``: runs the ``trainmon`` command."""

from trainmon.cli import main

main()
