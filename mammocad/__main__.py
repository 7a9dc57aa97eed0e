import sys

from mammocad.cli import main

sys.exit(main())
