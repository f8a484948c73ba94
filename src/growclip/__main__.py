"""`python -m growclip` runs the command line, as the `growclip` script does."""

import sys

from growclip.cli import main

sys.exit(main())
