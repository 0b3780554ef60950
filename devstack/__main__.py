"""`python -m devstack up|down|status|scenario|scale-scenario|migrate` (see devstack/stack.py)."""

from devstack.stack import main

raise SystemExit(main())
