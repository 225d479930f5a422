"""``python -m customer_import.sandbox``: the sandbox alone, as the test helper starts it."""

from __future__ import annotations

import argparse
import sys

from customer_import.sandbox.cli import add_arguments, run


def main() -> int:
    """Parse the sandbox's options and serve."""
    parser = argparse.ArgumentParser(
        prog="python -m customer_import.sandbox", description="Serve the customer API locally."
    )
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
