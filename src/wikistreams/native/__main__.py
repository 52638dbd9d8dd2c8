"""`python -m wikistreams.native ...`: the same as the console script `wikistreams-native`."""

import sys

from wikistreams.native.cli import main

sys.exit(main())
