import sys

from flowlord.cli import main

sys.exit(main())
