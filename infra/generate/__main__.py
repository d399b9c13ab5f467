import sys

from infra.generate import main

sys.exit(main())
