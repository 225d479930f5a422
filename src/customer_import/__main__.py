"""python -m customer_import"""

import sys

from customer_import.cli import main

sys.exit(main())
