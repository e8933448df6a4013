"""``python -m topoprune.cli``: the same as the ``topoprune`` command."""

from . import main

if __name__ == "__main__":
    main()
