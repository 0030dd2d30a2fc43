"""End to end in a real browser: the server as a subprocess, Playwright driving Debian's chromium
(both started by benchmarks/browser.py, shared with the screenshot scripts).

Fails (never skips) when chromium is missing: CI installs it (`.ci/run`). Screenshots go to
a temporary folder, or to $NETEMBED_SCREENSHOTS when set (how assets/screenshots/ were made).
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from benchmarks.browser import ROOT, dashboard, launch_chromium

PAGES = {  # url path -> title on the page ("" is the default page, Family)
    "": "Family of target functions",
    "zoo": "Zoo of trained networks",
    "gradients": "Gradients and line-sections",
    "embedder": "Cloze embedder",
    "embeddings": "Embeddings",
    "sweep": "Sweep: mask ratio x bottleneck",
}
EXCEPTION = '[data-testid="stException"]'
PLOT = ".js-plotly-plot"
# true once plotly has laid out and drawn every chart on the page (it sets _fullLayout on the chart's element)
PLOTS_DRAWN = """() => {
    const plots = [...document.querySelectorAll('.js-plotly-plot')];
    return plots.length > 0 && plots.every(p => p._fullLayout !== undefined && p.querySelector('svg.main-svg'));
}"""


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory) -> Path:
    """The server's runs folder (a test may save a run there for the server to show)."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def server(runs_folder):
    with dashboard(runs_folder) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = launch_chromium(p)  # fails (never skips) when chromium is missing
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("NETEMBED_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def settle(page, title: str, timeout=90_000):
    """Wait for the page's title and its first chart, then for streamlit to finish running."""
    expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=timeout)
    page.wait_for_selector(PLOT, timeout=timeout)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=timeout)
    page.wait_for_function(PLOTS_DRAWN, timeout=timeout)  # plotly draws after its element appears
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()


def test_every_page_shows_the_demo(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    for path, title in PAGES.items():
        page.goto(f"{server}/{path}")
        settle(page, title)
        assert page.locator(PLOT).count() >= 1
        page.screenshot(path=str(shots / f"{path or 'family'}.png"), full_page=True)
    # a click on a point of the Embeddings scatter chooses that model
    page.goto(f"{server}/embeddings")
    settle(page, PAGES["embeddings"])
    heading = page.get_by_role("heading", name="and its nearest neighbours")
    expect(heading).to_have_text("Model 0 and its nearest neighbours in embedding space")
    page.locator(PLOT).first.locator(".scatterlayer .trace .points path").nth(45).click(force=True)
    expect(heading).not_to_have_text("Model 0 and its nearest neighbours in embedding space", timeout=30_000)
    assert page.locator(EXCEPTION).count() == 0
    page.close()


def test_train_a_tiny_zoo_then_browse_it(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    # settings from the URL, as a shared link would give them
    # 1,000,000 steps (the widget's maximum) must outlast the seconds until the Cancel click. Measured on this
    # 2-core EPYC under load ~15: the C kernel 430-690 us/step (quiet: ~8x less, so ~1 min for the whole zoo),
    # autograd (no C compiler) 12 ms/step. The trainer sees the cancel at its next step (should_stop; it used
    # to wait for the next progress report, every 2000 steps: ~25 s without a compiler); width 8 keeps steps
    # short, and the timeouts stay generous for a loaded machine.
    page.goto(f"{server}/zoo?fam_k=2&zoo_m=3&zoo_width=8&zoo_steps=1000000")
    settle(page, PAGES["zoo"])
    page.get_by_role("button", name="Train zoo").click()
    expect(page.get_by_text("Zoo training: step")).to_be_visible(timeout=30_000)  # the live panel
    # training goes on while the user looks at another page: the sidebar shows its progress
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stSidebarNav").get_by_text("Family").click()
    settle(page, PAGES[""])
    expect(sidebar.get_by_text("zoo: step")).to_be_visible(timeout=30_000)
    sidebar.get_by_test_id("stSidebarNav").get_by_text("Zoo").click()
    page.get_by_role("button", name="Cancel").click()  # cancel keeps the models trained so far
    expect(page.get_by_text("Zoo training cancelled at step")).to_be_visible(timeout=180_000)
    sidebar.get_by_role("button", name="Open run", exact=True).click()  # the new run is shown only when asked
    expect(page.get_by_text("6 of 6 models shown")).to_be_visible(timeout=30_000)
    settle(page, PAGES["zoo"])
    page.screenshot(path=str(shots / "zoo-trained.png"), full_page=True)
    # the new run is the current one on the other pages too (in-app navigation keeps the session)
    page.get_by_test_id("stSidebarNav").get_by_text("Gradients").click()
    settle(page, PAGES["gradients"])
    expect(page.get_by_text("Line-sections on [-1, 1]: model 0:")).to_be_visible()  # the new zoo's model 0
    picker = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Current run")
    expect(picker).to_match_aria_snapshot('- combobox "Current run": /sine-K2 · M3 · \\d+\\/1000000 steps · s0 \\(unsaved\\)/')
    assert page.locator(EXCEPTION).count() == 0
    # another browser session meanwhile sees only the demo: nothing of this session's run
    other = browser.new_page(viewport={"width": 1400, "height": 1500})
    other.goto(f"{server}/zoo")
    settle(other, PAGES["zoo"])
    other_picker = other.get_by_test_id("stSidebar").get_by_role("combobox", name="Current run")
    expect(other_picker).to_match_aria_snapshot('- combobox "Current run": demo run (bundled)')
    expect(other.get_by_text("120 of 120 models shown")).to_be_visible()
    other_picker.click()
    expect(other.get_by_role("option")).to_have_count(1)  # the demo only: no "run made now" to pick
    other.close()
    page.close()


# elements of the main area reaching past the window's right edge (not clipped by a scrolling or clipping
# container that itself fits), and text cut short with an ellipsis: what "nothing overflows" checks
OVERFLOWING = """() => {
    const width = document.documentElement.clientWidth;
    const name = el => (el.getAttribute('data-testid') || el.tagName) + ': ' +
        ((el.innerText || '').trim() || el.outerHTML).slice(0, 100);
    const clipped = el => {
        for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
            if (getComputedStyle(a).overflowX !== 'visible' && a.getBoundingClientRect().right <= width + 1) return true;
        }
        return false;
    };
    const out = [];
    for (const el of document.querySelectorAll('[data-testid="stMain"] *')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0 || !el.checkVisibility({visibilityProperty: true})) continue;
        if ((r.right > width + 1 || r.left < -1) && !clipped(el)) out.push('past the edge: ' + name(el));
        const style = getComputedStyle(el);
        if (style.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1) out.push('cut short: ' + name(el));
    }
    if (document.documentElement.scrollWidth > width) out.push('the page scrolls sideways');
    return out;
}"""


def test_every_page_fits_1024_pixels_wide(server, runs_folder, browser, shots):
    """The layout at 1024 px (a small laptop), sidebar open: every page of the demo, the Zoo page with a
    mixed zoo's settings drawn and with a mixed zoo shown, and the Embeddings page's upload opened, show
    nothing past the window's edge and no text cut short (the whole-study test checks its pages too)."""
    from netembed.config import FamilyConfig, ZooConfig
    from netembed.family import make_family
    from netembed.mixed_zoo import train_mixed_zoo
    from netembed.store import Run, save_run

    family = make_family(FamilyConfig(n_functions=2, seed=1))
    archs = "8x1:relu,16x2:leaky_relu,8x3:tanh,32x2:sine"
    save_run(Run(family=family, zoo=train_mixed_zoo(family, ZooConfig(models_per_function=2, steps=20), archs)),
             runs_folder / "mixed-w1024")  # fmt: skip
    page = browser.new_page(viewport={"width": 1024, "height": 1200})
    views = [(path, path, title) for path, title in PAGES.items()]
    views += [("zoo-mixed-settings", "zoo?zoo_mixed=1&zoo_widths=8,16,32&zoo_depths=1,2,3&zoo_acts=relu,leaky_relu,"
               "tanh,sine", PAGES["zoo"]), ("zoo-mixed-run", "zoo?run=saved:mixed-w1024", PAGES["zoo"])]  # fmt: skip
    for name, path, title in views:
        page.goto(f"{server}/{path}")
        settle(page, title)
        page.screenshot(path=str(shots / f"w1024-{name or 'family'}.png"), full_page=True)
        assert page.evaluate(OVERFLOWING) == [], name or "family"
        if name == "embeddings":  # the upload of networks trained elsewhere, opened
            page.get_by_text("Networks trained elsewhere").click()
            expect(page.get_by_test_id("stMain").get_by_test_id("stFileUploaderDropzone")).to_be_visible()
            assert page.evaluate(OVERFLOWING) == [], "embeddings, upload opened"
    page.close()


def test_upload_a_run_archive_and_refuse_a_bad_one(server, browser, tmp_path):
    from netembed.archive import load_run_archive, run_archive

    good = tmp_path / "demo.zip"
    good.write_bytes(run_archive(ROOT / "assets" / "demo_run"))
    bad = tmp_path / "evil.zip"
    bad.write_bytes(b"not a zip at all")
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    page.goto(f"{server}/zoo")
    settle(page, PAGES["zoo"])
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Save, download, load").click()
    sidebar.locator('input[type="file"]').set_input_files(str(bad))
    expect(sidebar.get_by_text("Could not load evil.zip")).to_be_visible(timeout=30_000)
    sidebar.get_by_role("button", name="Remove evil.zip").click()
    expect(sidebar.get_by_text("Could not load evil.zip")).to_have_count(0, timeout=30_000)
    sidebar.locator('input[type="file"]').set_input_files(str(good))
    sidebar.get_by_role("button", name="Open run", exact=True).click()  # the upload joined the history
    picker = sidebar.get_by_role("combobox", name="Current run")
    expect(picker).to_match_aria_snapshot('- combobox "Current run": demo (unsaved)', timeout=30_000)
    settle(page, PAGES["zoo"])
    expect(page.get_by_text("120 of 120 models shown")).to_be_visible()
    with page.expect_download(timeout=60_000) as download:  # and the run goes out again as a zip that loads
        sidebar.get_by_role("button", name="Download this run (.zip)").click()
    assert load_run_archive(Path(download.value.path()).read_bytes()).zoo.n_models == 120
    page.close()


def test_a_whole_study_loses_nothing_and_its_links_reopen_the_same_view(server, browser, shots):
    """Issue 10's done-when: train, cancel, train again, embed, sweep, save, reload, share a link, two users.
    Tiny settings come in the first link (they stay in the URL on every page); nothing waits a fixed time."""
    tiny = "fam_k=2&zoo_m=3&zoo_width=8&zoo_steps=200&emb_steps=30&sw_ratios=0.5&sw_bottlenecks=2&sw_steps=20"
    page = browser.new_page(viewport={"width": 1024, "height": 1400})  # the narrow layout the issue asks for
    page.goto(f"{server}/?{tiny}")
    settle(page, PAGES[""])
    expect(page.get_by_text("The study, in order:")).to_be_visible()
    page.screenshot(path=str(shots / "landing.png"))
    sidebar, nav = page.get_by_test_id("stSidebar"), page.get_by_test_id("stSidebarNav")
    picker = sidebar.get_by_role("combobox", name="Current run")

    def go(title, path):  # pages without a run's result yet have no chart: wait for the title and the run's end
        nav.get_by_text(title, exact=True).click()
        expect(page.get_by_role("heading", name=PAGES[path])).to_be_visible(timeout=90_000)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=90_000)

    def open_new():
        sidebar.get_by_role("button", name="Open run", exact=True).first.click()
        expect(sidebar.get_by_role("button", name="Open run", exact=True)).to_have_count(0, timeout=30_000)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=90_000)  # the run has ended

    # train a zoo; the view stays on the demo until the user opens the new run
    go("Zoo", "zoo")
    assert "fam_k=2" in page.url and "sw_steps=20" in page.url  # settings of other pages stay in the link
    page.get_by_role("button", name="Train zoo").click()
    expect(sidebar.get_by_role("button", name="Open run", exact=True)).to_be_visible(timeout=120_000)
    expect(picker).to_match_aria_snapshot('- combobox "Current run": demo run (bundled)')
    open_new()
    expect(page.get_by_text("6 of 6 models shown")).to_be_visible(timeout=30_000)
    first = page.url
    # a second zoo, cancelled: it becomes another entry, the first one stays whole
    steps = page.get_by_label("Steps", exact=True)
    steps.fill("1000000")
    steps.press("Enter")
    page.wait_for_url(lambda url: "zoo_steps=1000000" in url, timeout=30_000)
    page.get_by_role("button", name="Train zoo").click()
    expect(page.get_by_text("Zoo training: step")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text("Zoo training cancelled at step")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)
    sidebar.get_by_role("button", name="Hide", exact=True).click()  # not opened: it stays in the history
    expect(sidebar.get_by_role("button", name="Hide", exact=True)).to_have_count(0, timeout=30_000)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=90_000)  # no stale copies left
    expect(page.get_by_text("6 of 6 models shown")).to_be_visible()  # still the first zoo, 200/200 steps
    expect(page.get_by_text("200/200 steps")).to_be_visible()
    sidebar.get_by_text("Unsaved runs (2 of at most").click()
    expect(sidebar.get_by_role("button", name="Discard the shown run")).to_be_visible(timeout=30_000)
    expect(sidebar.get_by_text("· zoo · not saved")).to_have_count(2)  # both zoos are kept
    page.wait_for_timeout(1000)  # for the picture only: the expander's opening animation
    page.screenshot(path=str(shots / "run-history.png"))
    # embed the first zoo, then sweep it
    go("Embedder", "embedder")
    page.get_by_role("button", name="Train embedder").click()
    expect(sidebar.get_by_role("button", name="Open run", exact=True)).to_be_visible(timeout=180_000)
    open_new()
    go("Sweep", "sweep")
    page.get_by_role("button", name="Run sweep (1 embedders)").click()
    expect(sidebar.get_by_role("button", name="Open run", exact=True)).to_be_visible(timeout=180_000)
    open_new()
    settle(page, PAGES["sweep"])
    expect(page.get_by_text("No sweep for this run yet")).to_have_count(0)
    assert page.evaluate(OVERFLOWING) == [], "a trained run's sweep at 1024 px"
    # save: the sidebar says so at once, and the link now names the saved run
    sidebar.get_by_text("Save, download, load").click()
    sidebar.get_by_role("textbox", name="Save as").fill("e2e-study")
    sidebar.get_by_role("textbox", name="Save as").press("Enter")
    sidebar.get_by_role("button", name="Save to the runs folder").click()
    expect(sidebar.get_by_text("saved as e2e-study")).to_be_visible(timeout=30_000)
    page.wait_for_url(lambda url: "e2e-study" in url, timeout=30_000)
    link = page.url
    # reload: the same view (the saved run's sweep), nothing silently replaced
    page.reload()
    settle(page, PAGES["sweep"])
    expect(picker).to_match_aria_snapshot('- combobox "Current run": "saved: e2e-study"')
    expect(page.get_by_text("No sweep for this run yet")).to_have_count(0)
    # a second user opens the shared link: the same run and view; the first user's unsaved runs are not there
    other = browser.new_page(viewport={"width": 1024, "height": 1400})
    other.goto(link)
    settle(other, PAGES["sweep"])
    expect(other.get_by_test_id("stSidebar").get_by_role("combobox", name="Current run")).to_match_aria_snapshot(
        '- combobox "Current run": "saved: e2e-study"')
    other.goto(first)  # a link to an unsaved run of another session says so, and keeps its URL
    settle(other, PAGES["zoo"])
    expect(other.get_by_text("not found")).to_be_visible()
    assert "run=session" in other.url
    # compare the saved run with the demo
    other.goto(f"{server}/compare?run=saved:e2e-study&cmp_runs=saved:e2e-study,demo")
    settle(other, "Compare runs")
    expect(other.get_by_text("one column per run")).to_be_visible()
    assert other.evaluate(OVERFLOWING) == [], "compare at 1024 px"
    other.screenshot(path=str(shots / "compare.png"), full_page=True)
    assert other.locator(EXCEPTION).count() == 0 and page.locator(EXCEPTION).count() == 0
    other.close()
    page.close()


def test_inside_a_network_trains_a_tiny_network_and_draws_its_units(server, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    # settings from the URL: a 2-module network of 4 units per layer, 5 embedder steps (about 20 s under load)
    page.goto(f"{server}/inside?inside_modules=2&inside_width=4&inside_net_steps=30&inside_embed_steps=5"
              "&inside_d_model=16")  # fmt: skip
    expect(page.get_by_role("heading", name="Inside a network")).to_be_visible(timeout=90_000)
    page.get_by_role("button", name="Train network and embedder").click()
    # the live training chart comes first; the units' charts when the job is done
    expect(page.get_by_role("heading", name="The units grouped")).to_be_visible(timeout=240_000)
    settle(page, "Inside a network")
    assert page.locator(PLOT).count() >= 4  # the units scatter, the unit's pictures, the groups
    page.screenshot(path=str(shots / "inside-tiny.png"), full_page=True)
    page.close()
