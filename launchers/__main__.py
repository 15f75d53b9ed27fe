import os
import sys

from launchers.cli import main

if __name__ == "__main__":  # not when a spawned worker imports the main module again
    try:
        sys.exit(main())
    except BrokenPipeError:  # `--print | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        sys.exit(1)
