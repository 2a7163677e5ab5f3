"""The web page end to end in a real headless Chromium (Debian `chromium` + `chromium-driver`, Selenium).

Install the browser with: apt-get install -y chromium chromium-driver (CI's .ci/run does). Without it
the test is skipped with that message — except under CI (CI=true), where it fails instead.
"""

import os
import shutil
from pathlib import Path

import pytest

from addressclip.serve.app import ServerThread, create_app
from addressclip.serve.loading import load_predictor
from addressclip.testing.toyworld import TrainedWorld

pytestmark = pytest.mark.slow  # a real Chromium

INSTALL_HINT = "apt-get install -y chromium chromium-driver && .venv/bin/pip install selenium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)
TIMEOUT_S = 30
VIEW_BOX = "return document.getElementById('map').getAttribute('viewBox')"


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    try:
        import selenium  # noqa: F401
    except ImportError:
        chromium = None
    if not chromium or not driver:
        message = f"no headless Chromium + chromedriver + selenium here; install with: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {message}")
        pytest.skip(message)
    return chromium, driver


@pytest.fixture(scope="session")
def world(trained_world) -> TrainedWorld:
    return trained_world


@pytest.fixture
def browser(tmp_path: Path):
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


def test_web_page_photo_to_top5_and_map(world: TrainedWorld, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    predictor = load_predictor(world.checkpoint)
    address, images = next(iter(world.train_images.items()))
    expected = predictor.predict_one(images[0], top_k=5)
    wait = WebDriverWait(browser, TIMEOUT_S)
    with ServerThread(create_app(predictor)) as server:
        browser.get(server.url + "/")
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#map[data-ready='1']")))
        assert len(browser.find_elements(By.CSS_SELECTOR, "#streets path")) == 170
        # a readable map before any photo: footprints, street names, a scale bar, no stray marker
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#map[data-buildings='1']")))
        assert int(browser.find_element(By.ID, "buildings").get_attribute("data-count")) > 100
        assert browser.find_elements(By.CSS_SELECTOR, "#buildings path.footprints")
        labels = browser.find_elements(By.CSS_SELECTOR, "#labels text.street-label")
        assert len(labels) >= 10 and "Hurukselantie" in {
            label.get_attribute("data-street") for label in labels
        }

        def shown_labels() -> int:  # names are drawn only where they fit along their street
            return sum(label.get_attribute("hidden") is None for label in labels)

        zoomed_out = shown_labels()
        assert zoomed_out >= 1
        caption = browser.find_element(By.ID, "map-info").text
        assert caption.startswith(f"{len(predictor.gallery)} candidate sub-streets"), caption
        display = "return getComputedStyle(document.getElementById('marker')).display"
        assert browser.execute_script(display) == "none"  # no 'estimated point' before a photo
        scale_text = browser.find_element(By.ID, "scale-text").text
        assert scale_text.endswith((" m", " km")), scale_text
        before = float(browser.find_element(By.ID, "scale").get_attribute("data-metres"))
        view = browser.execute_script(VIEW_BOX)
        browser.find_element(By.ID, "zoom-in").click()
        browser.find_element(By.ID, "zoom-in").click()
        assert browser.execute_script(VIEW_BOX) != view
        assert float(browser.find_element(By.ID, "scale").get_attribute("data-metres")) < before
        assert shown_labels() > max(zoomed_out, 3)  # closer in, more names fit
        zoomed_in = tmp_path / "web_page_zoomed.png"
        assert browser.save_screenshot(str(zoomed_in))
        browser.find_element(By.ID, "zoom-reset").click()
        assert browser.execute_script(VIEW_BOX) == view

        # a file that is not an image: the page shows the service's message
        bad = tmp_path / "notes.jpg"
        bad.write_text("not a photo")
        browser.find_element(By.ID, "file").send_keys(str(bad))
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#status.error")))
        assert "not an image" in browser.find_element(By.ID, "status").text

        browser.find_element(By.ID, "file").send_keys(str(images[0]))
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "body[data-predicted='1']")))
        items = browser.find_elements(By.CSS_SELECTOR, "#results .result")
        assert [i.get_attribute("data-address-id") for i in items] == [m.address_id for m in expected.matches]
        assert address in items[0].text and "%" in items[0].text
        assert browser.find_element(By.ID, "photo").get_attribute("naturalWidth") == "48"

        best = browser.find_element(By.CSS_SELECTOR, "#highlights path.rank-1")
        assert best.get_attribute("data-address-id") == expected.top.address_id
        assert len(browser.find_elements(By.CSS_SELECTOR, "#highlights path.predicted")) == 5
        badges = browser.find_elements(By.CSS_SELECTOR, "#ranks g.rank-badge")
        assert sorted(b.get_attribute("data-rank") for b in badges) == ["1", "2", "3", "4", "5"]
        assert browser.execute_script(display) != "none"
        marker = browser.find_element(By.ID, "marker")
        assert (
            marker.get_attribute("hidden") is None
            and marker.get_attribute("data-address-id") == expected.top.address_id
        )
        first_position = marker.get_attribute("transform")

        items[2].click()
        chosen = expected.matches[2].address_id
        wait.until(
            lambda d: (
                "selected" in d.find_elements(By.CSS_SELECTOR, "#results .result")[2].get_attribute("class")
            )
        )
        selected = browser.find_elements(By.CSS_SELECTOR, "#highlights path.selected")
        assert [p.get_attribute("data-address-id") for p in selected] == [chosen]
        assert "selected" not in browser.find_elements(By.CSS_SELECTOR, "#results .result")[0].get_attribute(
            "class"
        )
        assert (
            marker.get_attribute("data-address-id") == chosen
            and marker.get_attribute("transform") != first_position
        )

        screenshot = tmp_path / "web_page.png"
        assert browser.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 10_000
        print(f"screenshot: {screenshot}")

        # several photos at once: a sequence, decoded on the street graph and drawn as a path
        # the page orders photos by file name; the slipped-in photo is of a sub-street far from this one
        far = world.train_images[list(world.train_images)[2]][0]
        walk = []
        for index, photo in enumerate([*images[:3], far, *images[3:6]], start=1):
            walk.append(tmp_path / f"walk-{index:02d}.jpg")
            walk[-1].write_bytes(photo.read_bytes())
        browser.find_element(By.ID, "file").send_keys("\n".join(str(p) for p in walk))
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "body[data-sequence='1']")))
        steps = browser.find_elements(By.CSS_SELECTOR, "#results .step")
        assert len(steps) == len(walk) and all(address in step.text for step in steps)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#results .step.changed")) == 1
        decoded = browser.find_elements(By.CSS_SELECTOR, "#path-layer path.decoded")
        assert [p.get_attribute("data-address-id") for p in decoded] == [expected.top.address_id]
        assert [b.get_attribute("data-rank") for b in browser.find_elements(By.CSS_SELECTOR, "#ranks g")] == [
            f"1–{len(walk)}",
            "4",  # the slipped-in photo's own answer
        ]
        assert browser.find_elements(By.CSS_SELECTOR, "#highlights path") == []
        sequence_shot = tmp_path / "web_page_sequence.png"
        assert browser.save_screenshot(str(sequence_shot))
        print(f"screenshot: {sequence_shot}")
        errors = [
            e
            for e in browser.get_log("browser")
            if e["level"] == "SEVERE" and "/v1/predict" not in e["message"]
        ]
        assert errors == []  # (the refused upload above logs a 415, which is expected)
