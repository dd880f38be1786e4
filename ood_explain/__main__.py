"""``python -m ood_explain ...`` (also what ``torchrun -m ood_explain`` starts)."""

import sys

from .cli import main

sys.exit(main())
