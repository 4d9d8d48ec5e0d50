"""Every `merkl ui` page loaded in headless Chromium from a real uvicorn.

Checks what a user sees: names and states in the DOM after the page's script ran, the details
panel of a clicked DAG node, live refresh while `merkl run` works, no console error, and no
request to any other host. Screenshots of the DAG and files pages go to the test's tmp dir
(docs/ui.md shows copies).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from merkl.repo import Repo
from merkl.ui.app import create_app
from tests.helpers import write_module
from tests.serve.conftest import live_server
from tests.ui.browser import Browser
from tests.ui.conftest import ok

pytestmark = pytest.mark.slow
# Set to a folder (docs/images) to refresh the documentation's screenshots from a test run.
SCREENSHOTS_ENV = "MERKL_TEST_UI_SCREENSHOTS"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    chrome = Browser(tmp_path / "chromium-profile")
    yield chrome
    chrome.close()


def text_of(browser: Browser, selector: str = "main") -> str:
    return str(browser.evaluate(f"document.querySelector({selector!r}).innerText"))


def keep_screenshot(path: Path) -> None:
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        shutil.copy(path, Path(folder) / path.name)


def assert_clean(browser: Browser, url: str) -> None:
    assert browser.problems() == []
    own = urlsplit(url).netloc
    foreign = [u for u in browser.requested_urls() if urlsplit(u).netloc != own]
    assert foreign == [], "requests to other hosts"


def test_every_page_in_chromium(ui_url: str, browser: Browser, tmp_path: Path) -> None:
    browser.load(ui_url + "/")
    overview = text_of(browser)
    for expected in ("pipeline2.pipeline", "pipeline1.my_pipeline", "data/train.csv", "origin"):
        assert expected in overview
    assert "pipeline2.train" in overview  # a recent run

    browser.load(ui_url + "/dag/pipeline2.pipeline?epochs=100")
    states = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('g.node.output')]"
        ".map(n => [n.querySelector('text').textContent, n.classList.contains('cached') ? "
        "'cached' : n.classList.contains('missing') ? 'missing' : 'other']))"
    )
    assert states == {
        "pipeline2.load_data[0]": "cached",
        "pipeline2.load_data[1]": "cached",
        "pipeline2.train": "missing",
        "pipeline2.evaluate": "missing",
    }
    assert "data/train.csv" in browser.evaluate("document.querySelector('svg.graph').textContent")
    browser.evaluate(
        "[...document.querySelectorAll('g.node.output')].find(n => "
        "n.querySelector('text').textContent === 'pipeline2.train')"
        ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
    )
    details = browser.wait_for(
        "!document.getElementById('details').hidden && "
        "document.querySelector('#details .content').innerText"
    )
    assert "why it would run" in details
    assert "argument 'epochs' changed" in details
    assert "code hash" not in details  # an output: its task box has the code hash
    keep_screenshot(browser.screenshot(tmp_path / "ui-dag.png"))

    click_output = (
        "[...document.querySelectorAll('g.node.output')].find(n => "
        "n.querySelector('text').textContent === 'pipeline2.load_data[0]')"
        ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
    )
    browser.evaluate(click_output)
    details = browser.wait_for(
        "document.querySelector('#details h2').textContent === 'pipeline2.load_data[0]' && "
        "document.querySelector('#details .content').innerText"
    )
    assert "took" in details
    assert "Cached: a run would load it" in details
    browser.evaluate("document.querySelector('#details .remotes').previousSibling.click()")
    assert (
        browser.wait_for(
            "document.querySelector('#details p.remotes').textContent.startsWith('origin') && "
            "document.querySelector('#details p.remotes').textContent"
        )
        == "origin"
    )

    browser.evaluate("document.getElementById('details').hidden = true")
    browser.load(ui_url + "/runs")
    runs = text_of(browser)
    assert "pipeline2.train" in runs
    assert "pipeline1.task2" in runs

    browser.load(ui_url + "/files")
    files = text_of(browser)
    assert "data/train.csv" in files
    assert "clean" in files
    assert "modified" in files  # data/notes.txt was edited after tracking
    keep_screenshot(browser.screenshot(tmp_path / "ui-files.png"))

    browser.load(ui_url + "/files?remotes=1")
    assert "origin" in text_of(browser, "table.files")

    browser.load(ui_url + "/lineage")
    lineage = text_of(browser)
    assert "model.bin" in lineage
    assert "train.csv" in lineage
    keep_screenshot(browser.screenshot(tmp_path / "ui-lineage.png"))
    assert_clean(browser, ui_url)


def test_dag_page_refreshes_while_merkl_runs(ui_url: str, ui_repo: Repo, browser: Browser) -> None:
    browser.load(ui_url + "/dag/pipeline2.pipeline?epochs=100")
    assert browser.evaluate("document.querySelectorAll('g.node.output.missing').length") == 2
    ok("run", "pipeline2.pipeline", "--epochs", "100")
    browser.wait_for("document.querySelectorAll('g.node.output.missing').length === 0")
    assert browser.evaluate("document.querySelectorAll('g.node.output.cached').length") == 4
    assert "updated" in text_of(browser, "#live")
    assert_clean(browser, ui_url)


def test_a_missing_argument_is_filled_in(ui_url: str, browser: Browser) -> None:
    browser.load(ui_url + "/dag/pipeline1.my_pipeline")
    assert browser.evaluate("document.querySelectorAll('g.node.argument').length") == 1
    assert browser.evaluate("document.querySelectorAll('g.node.output.unknown').length") == 2
    browser.load(ui_url + "/dag/pipeline1.my_pipeline?input_value=42")
    assert browser.evaluate("document.querySelectorAll('g.node.output.cached').length") == 2
    assert_clean(browser, ui_url)


WIDE_SOURCE = """
from merkl import task

@task
def leaf(i):
    return i

@task
def combine(a, b):
    return a + b

def wide(n: int = 3400):
    level = [leaf(i) for i in range(n)]
    while len(level) > 1:
        level = [combine(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)] + (
            [level[-1]] if len(level) % 2 else []
        )
    return level[0]
"""


def test_a_10000_node_dag_is_drawn_collapsed(repo: Repo, browser: Browser, tmp_path: Path) -> None:
    write_module(repo.root, "wide", WIDE_SOURCE)
    with live_server(create_app(repo)) as url:
        browser.load(url + "/dag/wide.wide")
        summary = text_of(browser, "p.summary")
        nodes = int(summary.split(" nodes")[0].rsplit(" ", 1)[-1])
        assert nodes >= 10_000
        assert "drawn collapsed" in summary
        assert browser.evaluate("document.querySelectorAll('g.node').length") == 2
        browser.evaluate(
            "document.querySelector('g.node.task').dispatchEvent("
            "new MouseEvent('click', {bubbles: true}))"
        )
        details = browser.wait_for("document.querySelector('#details .content').innerText")
        assert "nodes drawn as one box" in details
        browser.screenshot(tmp_path / "ui-collapsed.png")
        assert_clean(browser, url)


def test_forget_asks_first_then_the_page_turns_red(
    ui_repo: Repo, browser: Browser, tmp_path: Path
) -> None:
    with live_server(create_app(ui_repo, allow_writes=True)) as url:
        browser.load(url + "/dag/pipeline2.pipeline")
        assert browser.evaluate("document.querySelectorAll('g.node.output.missing').length") == 0
        browser.evaluate(
            "[...document.querySelectorAll('g.node.output')].find(n => "
            "n.querySelector('text').textContent === 'pipeline2.train')"
            ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
        )
        browser.wait_for("!!document.querySelector('#details button.danger')")
        first = len(browser.events)
        # Clicked from a timer: confirm() blocks the page until the dialog is answered.
        browser.evaluate(
            "setTimeout(() => document.querySelector('#details button.danger').click(), 0)"
        )
        dialog = browser.wait_for_event("Page.javascriptDialogOpening", first)
        assert "The next run computes it again" in dialog["params"]["message"]
        browser.call("Page.handleJavaScriptDialog", accept=True)
        browser.wait_for("document.querySelectorAll('g.node.output.missing').length === 1")
        assert (
            browser.evaluate("document.querySelector('#details button.danger').textContent")
            == "done"
        )
        assert_clean(browser, url)
