"""The explorer page in a real browser (Debian's chromium, headless, driven by selenium through the
system chromedriver; `make test` installs both): the page of a compiled MLP training step on each
backend draws one node per node of f.graph, a click shows a node's user line and code, a double
click opens a fused kernel in place, the rewrite slider changes the graph (and follows the selected
node), search finds ops, nothing logs an error (a Content Security Policy violation would), and a
screenshot is taken. Skipped, saying why, where chromium, chromedriver or selenium is missing."""
from __future__ import annotations

import shutil
import tempfile

import pytest

from symgraph.printing import to_html
from symgraph.printing.collect import inner_graph
from symgraph.graph import toposort

from explore_cases import HIDDEN_LINE, batch, hidden_node, mlp_step

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,900"]


def _why_not() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if CHROMIUM is None or CHROMEDRIVER is None:
        return "Debian's chromium and chromium-driver are not installed (make test installs them)"
    if shutil.which("dot") is None:
        return "Graphviz's dot is not installed"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="sg-chromium-")
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Per backend (built once): a profiled, history-recording MLP step and its page's path."""
    cache = {}

    def get(backend):
        if backend not in cache:
            f = mlp_step(backend, profile=True, history=True)
            for _ in range(2):
                f(*batch(f))
            path = tmp_path_factory.mktemp("explorer") / f"mlp_step_{backend}.html"
            to_html(f, path)
            cache[backend] = f, path
        return cache[backend]
    return get


@pytest.fixture
def page(browser, pages, backend):
    """The page, freshly loaded; yields (driver, function); no error may be logged meanwhile."""
    f, path = pages(backend)
    browser.get(path.as_uri())
    browser.get_log("browser")  # start the log afresh
    yield browser, f
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def _by(driver, css):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, css)


def _node(driver, sid):
    return driver.execute_script("return document.getElementById(arguments[0]);", sid)


def test_the_graph_has_one_drawn_node_per_node(page):
    driver, f = page
    assert len(_by(driver, "#sg-graph > svg g.node.apply")) == len(f.graph.apply_nodes)
    assert driver.title.startswith("train_step(x, t)")


def test_click_a_node_for_its_user_line_and_code(page):
    from selenium.webdriver import ActionChains
    driver, f = page
    node = hidden_node(f)
    ActionChains(driver).click(_node(driver, f.history.sid(node))).perform()
    assert _by(driver, "#sg-node-op")[0].text == str(node.op)
    assert _by(driver, "#sg-node-user")[0].text.startswith(f"explore_cases.py:{HIDDEN_LINE}")
    assert "T.sigmoid(T.dot(x, W) + b)" in _by(driver, "#sg-node-user-text")[0].text
    code = _by(driver, "#sg-node-code")[0].get_attribute("textContent")
    line = next(ln.strip() for ln in f.source.splitlines() if f"(explore_cases.py:{HIDDEN_LINE})" in ln
                and "Dot" in ln)
    assert line in code
    assert _by(driver, f'g[id="{f.history.sid(node)}"].sg-selected')


def test_open_a_fused_kernel_in_place(page):
    from selenium.webdriver import ActionChains
    driver, f = page
    node = hidden_node(f)
    sid = f.history.sid(node)
    ActionChains(driver).double_click(_node(driver, sid)).perform()
    inner = _by(driver, f'g.sg-inner[data-for="{sid}"] g.node.apply')
    ins, outs = inner_graph(node)
    assert len(inner) == len(toposort(outs, blockers=ins)) == 3
    ActionChains(driver).click(inner[0]).perform()
    assert _by(driver, "#sg-node-op")[0].text == "Dot"
    _by(driver, f'g.sg-inner[data-for="{sid}"] .sg-inner-close')[0].click()
    assert not _by(driver, "g.sg-inner")


def test_the_rewrite_slider_changes_the_graph_and_follows_the_selection(page):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.keys import Keys
    driver, f = page
    sid = f.history.sid(hidden_node(f))
    ActionChains(driver).click(_node(driver, sid)).perform()
    slider = _by(driver, "#sg-slider")[0]
    slider.send_keys(Keys.HOME)
    assert "step 0 of" in _by(driver, "#sg-step-label")[0].text
    drawn = _by(driver, "#sg-graph > svg g.node.apply")
    assert len(drawn) == len(f.history.steps[0].nodes) != len(f.graph.apply_nodes)
    related = {g.get_attribute("id") for g in _by(driver, "g.sg-related")}
    assert related == set(f.history.follow(sid, len(f.history.steps) - 1, 0))
    fusion = next(k for k, s in enumerate(f.history.steps) if s.label == "fusion")
    for _ in range(fusion):
        slider.send_keys(Keys.ARROW_RIGHT)
    assert f"step {fusion} of" in _by(driver, "#sg-step-label")[0].text
    assert len(_by(driver, "#sg-graph > svg g.node.apply.sg-new")) == len(f.history.steps[fusion].new)
    assert _by(driver, f'g[id="{sid}"].sg-selected')
    _by(driver, ".sg-tabs button[data-tab=step]")[0].click()
    assert "replacements" in _by(driver, "#sg-tab-step")[0].text.lower()
    assert _by(driver, f'#sg-tab-step .sg-chip.new[data-sid="{sid}"]')  # the rule that made the kernel


def test_search_for_an_op(page):
    from selenium.webdriver.common.keys import Keys
    driver, f = page
    box = _by(driver, "#sg-search")[0]
    box.send_keys("dot")
    expected = [n for n in f.graph.apply_nodes if "dot" in f"{n.op} {type(n.op).__name__}".lower()]
    assert len(_by(driver, "g.node.apply.sg-match")) == len(expected) >= 2
    assert _by(driver, "#sg-search-status")[0].text == f"{len(expected)} nodes"
    box.send_keys(Keys.ENTER)
    selected = _by(driver, "g.sg-selected")
    assert len(selected) == 1 and "sg-match" in selected[0].get_attribute("class")
    box.send_keys(Keys.ESCAPE)
    assert not _by(driver, "g.sg-match")
    box.send_keys("W")  # a shared variable's box matches by its name
    assert _by(driver, 'g.node.var.shared.sg-match')


def test_profile_colours_and_a_screenshot(page, tmp_path):
    driver, f = page
    fills = {g.get_attribute("id"): driver.execute_script(
        "return arguments[0].querySelector('ellipse, polygon, path').getAttribute('fill');", g)
        for g in _by(driver, "#sg-graph > svg g.node.apply")}
    assert all(fill.startswith("hsl(") for fill in fills.values())  # every node ran: every node coloured
    slowest = max(f.graph.apply_nodes, key=lambda n: f.profile.seconds[f.profile.nodes.index(n)])
    assert fills[f.history.sid(slowest)] == "hsl(0, 100%, 55%)"
    _by(driver, ".sg-tabs button[data-tab=profile]")[0].click()
    assert "Function profiling" in _by(driver, "#sg-profile-text")[0].get_attribute("textContent")
    shot = tmp_path / "explorer.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
