"""`python -m kenning_hil.cli`: the `kenning-hil` command without its console script."""

import sys

from kenning_hil.cli import main

sys.exit(main())
