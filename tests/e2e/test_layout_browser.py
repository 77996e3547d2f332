"""The page layout in a real browser, at 1440 and 800 px: every control of the header and the navigation lies
inside the window and takes a click (Log out included), no page of the portal scrolls sideways as a whole, and a
severity looks the same in a badge, the tags table's bar and the Summary's chart.

On main, at 800 px the header's right side (the user's name and Log out) ran past the window's right edge and the
project tabs Configuration and Logs were past the content's right edge; at 1440 px the tags table (long tag names,
one-line pull commands) moved the whole content area sideways; and the Summary's chart and the tags table's bar
drew Medium, Negligible and Unknown in lighter colours than their badges.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from portal.core.models import User
from projects.models import Membership, Project, Role
from registries.models import Repository, Tag
from scanning.models import SEVERITY_ORDER, ImageScan, ScanState
from tests.conftest import PASSWORD
from tests.e2e.conftest import SCREENSHOTS, Portal

pytestmark = [pytest.mark.e2e]

# The header's and the main navigation's controls, as a keyboard or mouse user meets them.
CONTROLS = (
    "header a, header button, header select, header input:not([type=hidden]), "
    "nav[aria-label=Main] a, nav[aria-label=Main] button"
)
# A plain user with a longer name than the test admin's, in projects whose names are longer than the selector.
PLAIN_USER = "alexandra.featherstonehaugh"
PROJECTS = ["shipyard", "payments-platform-staging", "observability-and-alerting"]


def snap(page: Page, name: str, width: int, full_page: bool = False) -> None:
    """Save a screenshot of a step (test-output/screenshots)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"layout_{name}_{width}px.png"), full_page=full_page)


@pytest.fixture
def projects(admin: User) -> list[Project]:
    """Three projects with long-ish names; the plain user is a developer in two of them."""
    made = [Project.objects.create(name=name) for name in PROJECTS]
    plain = User.objects.create_user(PLAIN_USER, password=PASSWORD)
    for project in made[1:]:
        Membership.objects.create(project=project, user=plain, role=Role.DEVELOPER)
    return made


@pytest.fixture(params=["admin", "plain"])
def username(request: pytest.FixtureRequest, admin: User, projects: list[Project]) -> str:
    """Who logs in: the portal administrator or a developer of two projects."""
    return admin.username if request.param == "admin" else PLAIN_USER


def scroll_width(page: Page) -> int:
    """How wide the document is: more than the window means the whole page scrolls sideways."""
    return page.evaluate("() => document.documentElement.scrollWidth")


def expect_controls_inside(page: Page, width: int) -> int:
    """Every visible control of the header and navigation lies inside the window and would take a click; returns
    how many there are."""
    controls = page.locator(CONTROLS)
    checked = 0
    for index in range(controls.count()):
        control = controls.nth(index)
        if not control.is_visible():
            continue
        box = control.bounding_box()
        assert box is not None
        label = control.evaluate("el => el.outerHTML.slice(0, 120)")
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{label} spans {box} outside 0..{width}"
        assert box["y"] >= 0, f"{label} is above the window: {box}"
        # Visible, enabled, not moving and not covered by another element where it would be clicked.
        control.click(trial=True, timeout=5_000)
        checked += 1
    return checked


def test_header_and_navigation_controls_fit_and_log_out_works(
    portal: Portal, username: str, width: int, request: pytest.FixtureRequest
) -> None:
    page = portal.page
    portal.log_in(username)
    who = "admin" if username != PLAIN_USER else "plain"

    header = page.locator("header.header")
    header_box = header.bounding_box()
    assert header_box is not None and header_box["x"] + header_box["width"] <= width
    assert expect_controls_inside(page, width) >= 8
    for name in ("Log out", username):
        control = header.get_by_role("button", name=name).or_(header.get_by_role("link", name=name))
        expect(control).to_be_visible()
        box = control.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width, f"{name} runs past the right edge: {box}"
    expect(header.get_by_label("Project", exact=True)).to_be_visible()
    assert scroll_width(page) <= width
    snap(page, f"header_{who}", width)

    header.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/"))
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


# No page scrolls sideways.


@pytest.fixture
def shipyard(projects: list[Project], admin: User) -> Tag:
    """shipyard/app with three tags, the first scanned with findings of every severity; a member to list."""
    project = projects[0]
    Membership.objects.create(project=project, user=User.objects.get(username=PLAIN_USER), role=Role.VIEWER)
    repository = Repository.objects.create(project=project, name="shipyard/app")
    tags = [
        Tag.objects.create(
            repository=repository,
            name=f"1.{n}.0-bookworm-slim-with-debug-symbols",
            digest="sha256:" + str(n) * 64,
            size=(n + 1) * 48_000_000,
            pushed_by=PLAIN_USER,
        )
        for n in range(3)
    ]
    now = timezone.now()
    ImageScan.objects.create(
        digest=tags[0].digest,
        repository=repository.name,
        state=ScanState.SUCCEEDED,
        summary={severity: SEVERITY_ORDER.index(severity) + 1 for severity in SEVERITY_ORDER},
        package_count=120,
        distribution="debian 12",
        scanned=now,
        matched=now,
    )
    return tags[0]


# The pages a portal administrator reaches from the navigation and a project's tabs.
PAGES = [
    ("home", {}),
    ("container-list", {}),
    ("library-search", {}),
    ("library-repositories", {}),
    ("host-list", {}),
    ("project-list", {}),
    ("project-detail", {"name": "shipyard"}),
    ("project-repositories", {"name": "shipyard"}),
    ("repository-detail", {"name": "shipyard", "repository": "app"}),
    ("project-registries", {"name": "shipyard"}),
    ("project-infrastructure", {"name": "shipyard"}),
    ("project-replication", {"name": "shipyard"}),
    ("project-members", {"name": "shipyard"}),
    ("project-configuration", {"name": "shipyard"}),
    ("project-logs", {"name": "shipyard"}),
    ("configuration", {}),
    ("identities", {}),
    ("credentials", {}),
    ("certificates", {}),
    ("global-registries", {}),
    ("replication-endpoints", {}),
    ("replication-rules", {}),
    ("logs", {}),
    ("profile", {}),
]


def test_no_page_scrolls_sideways(portal: Portal, admin: User, shipyard: Tag, width: int) -> None:
    page = portal.page
    portal.log_in(admin.username)
    too_wide = {}
    for name, kwargs in PAGES:
        page.goto(reverse(name, kwargs=kwargs))
        # Neither the document nor the content area beside the navigation scrolls sideways (a wide table scrolls
        # inside its own region).
        document, main, main_visible = page.evaluate(
            """() => {
                const main = document.querySelector("main.content-area");
                return [document.documentElement.scrollWidth, main.scrollWidth, main.clientWidth];
            }"""
        )
        if document > width or main > main_visible:
            too_wide[name] = (document, main, main_visible)
    assert not too_wide, f"pages wider than {width} px (document, content area, its visible width): {too_wide}"

    # Every project tab is on screen (on main, Configuration and Logs were past the right edge at 800 px).
    page.goto(reverse("project-detail", kwargs={"name": "shipyard"}))
    tabs = page.locator(".wharf-tabs a")
    for index in range(tabs.count()):
        box = tabs.nth(index).bounding_box()
        assert box is not None and box["x"] + box["width"] <= width, tabs.nth(index).inner_text()
    snap(page, "project_tabs", width)
    page.goto(reverse("repository-detail", kwargs={"name": "shipyard", "repository": "app"}))
    snap(page, "tags_table", width)


def expect_uncovered(page: Page, locator) -> None:
    """The element shows whole: the points just inside its four corners hit it (nothing cuts it off or covers it)."""
    expect(locator).to_be_visible()
    hits = locator.evaluate(
        """el => {
            const r = el.getBoundingClientRect();
            const points = [[r.left + 2, r.top + 2], [r.right - 2, r.top + 2], [r.left + 2, r.bottom - 2],
                            [r.right - 2, r.bottom - 2]];
            return points.map(([x, y]) => el.contains(document.elementFromPoint(x, y)));
        }"""
    )
    assert all(hits), f"part of the element is cut off or covered: {hits}"


def test_a_wide_table_scrolls_in_its_region_and_its_popups_are_whole(
    portal: Portal, admin: User, shipyard: Tag, width: int
) -> None:
    page = portal.page
    page.set_viewport_size({"width": width, "height": 700})
    portal.log_in(admin.username)
    page.goto(reverse("repository-detail", kwargs={"name": "shipyard", "repository": "app"}))
    region = page.locator(".wharf-table-region", has=page.get_by_role("table", name="Tags"))
    scroll, visible = region.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert scroll > visible, "the tags table fits: make its tag names longer so the test shows a wide table"
    assert page.evaluate(
        "() => document.querySelector('main').scrollWidth <= document.querySelector('main').clientWidth"
    )

    # The scanned tag is the last row: its summary opens below the region's bottom edge.
    cell = page.locator(f'tr[data-tag="{shipyard.name}"] .wharf-vuln')
    cell.hover()
    summary = cell.locator(".wharf-vuln-summary")
    expect_uncovered(page, summary)
    # The pointer can move from the bar into the summary (to read or select it) without the summary closing.
    box = summary.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=8)
    expect(summary).to_be_visible()
    snap(page, "tags_table_summary", width)

    # The projects table's row menu of its last row.
    page.goto(reverse("project-list"))
    page.get_by_label("Actions for shipyard").click()
    expect_uncovered(page, page.locator("details[open] .wharf-menu"))
    snap(page, "projects_row_menu", width)
    # It closes as a menu does: on a click elsewhere, and on Escape (focus back on its button).
    page.locator("main").click(position={"x": 5, "y": 5})
    expect(page.locator("details.wharf-row-menu[open]")).to_have_count(0)
    menu_button = page.get_by_label("Actions for shipyard")
    menu_button.click()
    expect(page.locator("details.wharf-row-menu[open]")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(page.locator("details.wharf-row-menu[open]")).to_have_count(0)
    expect(menu_button).to_be_focused()


# Severity colours.


def rgb(colour: str) -> tuple[int, int, int]:
    """A CSS colour as "#rrggbb" or "rgb(r, g, b)" as its three channels."""
    colour = colour.strip()
    if colour.startswith("#"):
        return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
    red, green, blue = re.findall(r"\d+", colour)[:3]
    return int(red), int(green), int(blue)


def test_a_severity_has_one_colour_in_badges_bars_and_the_chart(
    portal: Portal, admin: User, shipyard: Tag, width: int
) -> None:
    page = portal.page
    portal.log_in(admin.username)
    page.goto(reverse("project-detail", kwargs={"name": "shipyard"}))
    canvas = page.locator("#vulnerability-chart")
    expect(canvas).to_have_attribute("data-drawn", str(len(SEVERITY_ORDER)))
    labels, colours = canvas.evaluate(
        "canvas => { const d = Chart.getChart(canvas).data; return [d.labels, d.datasets[0].backgroundColor]; }"
    )
    assert sorted(labels) == sorted(SEVERITY_ORDER)
    badges = {
        severity: rgb(
            page.locator(f'li[data-severity="{severity}"] .wharf-sev').evaluate(
                "el => getComputedStyle(el).backgroundColor"
            )
        )
        for severity in SEVERITY_ORDER
    }
    assert {label: rgb(colour) for label, colour in zip(labels, colours, strict=True)} == badges
    assert len(set(badges.values())) == len(SEVERITY_ORDER), "two severities share a colour"
    canvas.scroll_into_view_if_needed()
    snap(page, "severity_chart", width)

    # The tags table's bar: each segment is filled with its badge's colour, and so is the hover summary's badge.
    page.goto(reverse("repository-detail", kwargs={"name": "shipyard", "repository": "app"}))
    cell = page.locator(".wharf-vuln[data-vulnerability=vulnerable]")
    for severity, colour in badges.items():
        segment = cell.locator(f'rect[data-severity="{severity}"]')
        assert rgb(segment.evaluate("el => getComputedStyle(el).fill")) == colour, severity
        badge = cell.locator(".wharf-vuln-summary .wharf-sev", has_text=severity)
        assert rgb(badge.evaluate("el => getComputedStyle(el).backgroundColor")) == colour, severity
    cell.hover()
    expect(cell.locator(".wharf-vuln-summary")).to_be_visible()
    snap(page, "severity_bar", width)
