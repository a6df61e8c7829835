"""`python -m raybricks ...` is the `raybricks` command."""

import sys

from raybricks.cli import entry

sys.exit(entry())
