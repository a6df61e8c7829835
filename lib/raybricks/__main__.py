"""`python -m raybricks ...` is the `raybricks` command."""

import sys

from raybricks.cli import main

sys.exit(main())
