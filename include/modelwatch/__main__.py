"""``python -m include.modelwatch ...``: the operator CLI (see cli.py)."""

from include.modelwatch.ops.cli import main

raise SystemExit(main())
