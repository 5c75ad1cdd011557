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
            "The two must be a matching pair: requirements.txt (one lock for Linux, macOS and\n"
            "Windows) pins torch and torchvision together. A torch from a local wheel directory\n"
            "(a CPU-only build, say) has no torchvision to match. Fix: `rm -rf .venv` and run\n"
            "`make book` again, so that pip installs the pinned pair from PyPI.",
            file=sys.stderr,
        )
        return 1
    python = ".".join(map(str, sys.version_info[:3]))
    print(
        f"bootstrap: Python {python}, torch {torch.__version__},"
        f" torchvision {torchvision.__version__}: ok"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
