import sys

from s2dlab.cli import main

sys.exit(main())
