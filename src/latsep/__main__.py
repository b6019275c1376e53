import sys

from latsep.cli import main

sys.exit(main())
