import sys

from mammocad.cli import main

if __name__ == "__main__":  # worker processes (spawn) may import this module again
    sys.exit(main())
