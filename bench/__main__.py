"""`python -m bench` (make bench) runs every benchmark; `--quick` (make bench-quick) a reduced set."""

import sys

from bench.run import main

sys.exit(main())
