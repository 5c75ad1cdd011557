"""Check that the virtual environment can run the course: torch and torchvision import together.

Run by `make` after installing requirements.txt. Exits non-zero with a message naming the fix.
"""

import sys


def main() -> int:
    try:
        import torch
        import torchvision
    except Exception as exc:  # an ImportError, or a RuntimeError from a mismatched pair
        print(
            f"bootstrap: `import torch, torchvision` failed in {sys.prefix}:\n"
            f"  {type(exc).__name__}: {exc}\n"
            "The two must be a matching pair: requirements.txt pins torch and torchvision\n"
            "together. A CPU-only torch from a local wheel directory has no torchvision to\n"
            "match. Fix: `rm -rf .venv` and run `make book` again, so that pip installs the\n"
            "pinned pair from PyPI.",
            file=sys.stderr,
        )
        return 1
    print(f"bootstrap: torch {torch.__version__}, torchvision {torchvision.__version__}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
