"""``python -m autopicker``: the same command line as the ``autopicker`` script."""

from autopicker.cli.app import main

main()
