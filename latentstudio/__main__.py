"""``python -m latentstudio`` is the same as the ``latentstudio`` command."""
import sys

from latentstudio.cli import main

sys.exit(main())
