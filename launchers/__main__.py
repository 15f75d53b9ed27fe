import os
import sys

from launchers.cli import main

try:
    sys.exit(main())
except BrokenPipeError:  # `--print | head`: the reader has what it wanted
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
    sys.exit(1)
