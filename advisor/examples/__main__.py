"""``python -m advisor.examples NAME ...``: write packaged example datasets and print their folders."""

import sys

from advisor.examples.datasets import main

sys.exit(main())
