"""`python -m bench` runs the engine benchmark (the only one so far); its options pass through."""

import sys

from bench.engine_steps import main

sys.exit(main())
