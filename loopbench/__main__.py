import sys

from loopbench.cli import main

sys.exit(main())
