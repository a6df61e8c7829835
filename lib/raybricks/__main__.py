"""`python -m raybricks ...` is the `raybricks` command."""

import sys

from raybricks.entry import entry

sys.exit(entry())
