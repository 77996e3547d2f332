"""The severity colours have one definition: a custom property per severity in wharf.css, which the badges, the
tags table's bar and the Summary's chart (scanning_chart.js) all read. tests/e2e/test_layout_browser.py checks in a
browser that a badge and the chart agree; this keeps a second copy of the colours from creeping back in."""

from __future__ import annotations

import re
from pathlib import Path

from scanning.models import SEVERITY_ORDER

STATIC = Path(__file__).resolve().parents[2] / "static" / "wharf"
HEX = re.compile(r"#[0-9a-fA-F]{3,8}\b")


def test_every_severity_has_its_colour_defined_once() -> None:
    css = (STATIC / "wharf.css").read_text()
    for severity in SEVERITY_ORDER:
        definitions = re.findall(rf"--wharf-sev-{severity.lower()}\s*:\s*(#[0-9a-fA-F]{{6}})\s*;", css)
        assert len(definitions) == 1, f"{severity}: {definitions}"


def test_severity_rules_and_the_chart_name_no_colour_of_their_own() -> None:
    css = (STATIC / "wharf.css").read_text()
    rules = [line for line in css.splitlines() if re.match(r"\.wharf-sev(-fill)?-\w+ \{", line)]
    assert len(rules) == 2 * len(SEVERITY_ORDER)
    for rule in rules:
        # A badge may set its text colour (Low's is dark); its background or fill comes from the custom property.
        assert re.search(r"(background|fill): var\(--wharf-sev-\w+\)", rule), rule
        assert not HEX.search(rule.split("color:")[0]), rule
    assert not HEX.search((STATIC / "scanning_chart.js").read_text())
