"""`python -m bench` runs the engine benchmark (`make bench`); `python -m bench.listtasks` runs the other."""

import sys

from bench.engine_steps import main

sys.exit(main())
