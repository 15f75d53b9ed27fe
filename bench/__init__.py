"""`make bench`: the launchers and their peers side by side, measured on this machine."""
