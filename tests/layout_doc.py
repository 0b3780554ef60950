"""`python -m tests.layout_doc`: write the table of layers into docs/architecture.md.

The table is generated from `LAYERS` in tests/unit/test_layout.py (the rule the tests check), between the
markers `<!-- layers:begin -->` and `<!-- layers:end -->`; the rest of the doc is left as it is.
"""

from __future__ import annotations

from tests.unit.test_layout import ARCHITECTURE_DOC, with_layers_table


def main() -> int:
    text = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    new = with_layers_table(text)
    if new != text:
        ARCHITECTURE_DOC.write_text(new, encoding="utf-8")
        print(f"updated {ARCHITECTURE_DOC.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
