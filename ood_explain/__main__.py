"""``python -m ood_explain ...`` (also what ``torchrun -m ood_explain`` starts)."""

import sys

from ood_explain.tools.cli import main

sys.exit(main())
