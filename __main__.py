"""``python -m smie`` and ``torchrun -m smie``: the same CLI as the ``smie`` console script."""
from smie.cli import run

if __name__ == "__main__":
    run()
