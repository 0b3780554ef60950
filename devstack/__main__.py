"""`python -m devstack up|down|status|scenario|scale-scenario|migrate` (see devstack/cli.py)."""

from devstack.cli import main

raise SystemExit(main())
