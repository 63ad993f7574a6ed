"""`python -m bench.chaos`: see bench/chaos/run.py."""

import sys

from bench.chaos.run import main

sys.exit(main())
