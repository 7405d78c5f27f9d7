"""``python -m layerswarm.cli ...``: the same as ``layerswarm ...`` (the package's import set the
start-up Ctrl-C handler already)."""

import sys

from . import main

sys.exit(main())
