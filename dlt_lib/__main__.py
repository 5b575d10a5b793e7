import sys

from dlt_lib.cli import main

sys.exit(main())
