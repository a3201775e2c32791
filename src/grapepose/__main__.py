import sys

from grapepose.cli.main import main

sys.exit(main())
