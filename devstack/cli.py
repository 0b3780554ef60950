"""`python -m devstack up|down|status|scenario|scale-scenario|migrate`: the command line of the dev stack
(devstack/stack.py starts and stops the processes; devstack/scale.py is the Celery stack's scenario)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from devstack.scale import EMPLOYEES, scale_scenario
from devstack.stack import EXECUTORS, Stack, record_executor, recorded_executor
from include.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds until everything is healthy")
    up.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="local: airflow standalone (default); celery: components and Celery workers",
    )
    down = sub.add_parser("down")
    down.add_argument("--services", action="store_true", help="also stop PostgreSQL/Redis if devstack started them")
    sub.add_parser("status")
    sub.add_parser("migrate")
    sub.add_parser("scenario")
    scale = sub.add_parser("scale-scenario")
    scale.add_argument("--employees", type=int, help="default DEVSTACK_SCALE_EMPLOYEES (12)")
    args = parser.parse_args(argv)

    if args.cmd == "up":
        executor = args.executor or os.environ.get("DEVSTACK_EXECUTOR", "local")
    else:  # down, status and the scenarios act on what `up` started
        executor = recorded_executor() or os.environ.get("DEVSTACK_EXECUTOR", "local")
    stack = Stack(Settings(), executor=executor)
    if args.cmd == "up":
        record_executor(stack)
    try:
        if args.cmd == "up":
            stack.up(args.timeout)
        elif args.cmd == "down":
            stack.down(services=args.services)
        elif args.cmd == "status":
            return stack.status()
        elif args.cmd == "scenario":
            return stack.scenario()
        elif args.cmd == "scale-scenario":
            return scale_scenario(stack, employees=args.employees or EMPLOYEES)
        elif args.cmd == "migrate":
            if not stack._pg_up():
                print("PostgreSQL does not answer: hub migrations skipped (make demo runs them)")
                return 0
            stack.migrate()
            print("hub migrated")
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        print(f"devstack {args.cmd}: {exc}", file=sys.stderr)
        return 1
    return 0
