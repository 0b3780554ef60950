"""The development stack behind `make demo`, `make scale-demo` and `make down`, and the demo scenario.

Not part of the product: nothing under include/ imports it (tests/unit/test_layout.py). It starts the
sandboxes, the gateway and Airflow on this machine from the same settings (.env) as everything
else, seeds the sandbox firm and plays the scenario; `python -m devstack --help`.
"""
