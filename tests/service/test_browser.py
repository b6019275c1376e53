"""The web page in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, installed by scripts/setup.sh) driven through Selenium against
`latsep serve` on loopback with the tiny shipped bundles.

A screenshot of the finished page is written to build/screenshots/web-page.png (the README's
picture comes from it). Without the browser, its driver or selenium the tests skip, saying
which is missing.
"""

from __future__ import annotations

import base64
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import REPO, live_server, tone_mix, wait_for, wav_bytes
from test_cli_commands import free_port, ready, serve, stop

from latsep.jobs import WorkerInfo
from latsep.service.app import create_app
from latsep.settings import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = REPO / "build" / "screenshots"
TINY = [REPO / "artifacts" / "tiny" / "plain", REPO / "artifacts" / "tiny" / "lq"]
KEY = "k" * 16 + "-browser"


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            return f"{path} is absent: install Debian's {package} (scripts/setup.sh does)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1100,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console, for failures
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def page_state(driver) -> str:
    return str(driver.execute_script("return document.body.dataset.state || ''"))


def wait_state(driver, wanted: str, timeout: float) -> None:
    def check() -> bool:
        state = page_state(driver)
        if state == "ended" and wanted != "ended":
            stage = driver.find_element("id", "stage").text
            raise AssertionError(f"the page ended without stems: {stage}")
        return state == wanted

    try:
        wait_for(check, timeout=timeout, interval=0.2)
    except TimeoutError:
        console = [entry["message"] for entry in driver.get_log("browser")]
        raise AssertionError(
            f"the page is {page_state(driver)!r}, not {wanted!r}, after {timeout} s; "
            f"console: {console}"
        ) from None


def drop_file(driver, element_id: str, name: str, data: bytes) -> None:
    """What a drag and drop from the desktop delivers: a drop event carrying the file."""
    driver.execute_script(
        """
        const [id, name, b64] = arguments;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: "audio/wav" }));
        const target = document.getElementById(id);
        for (const type of ["dragenter", "dragover", "drop"]) {
          target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true,
                                                     cancelable: true }));
        }
        """,
        element_id,
        name,
        base64.b64encode(data).decode(),
    )


def save_screenshot(driver, name: str) -> Path:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1100, min(int(height) + 160, 4000))
    driver.execute_script("window.scrollTo(0, 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(tmp_path, TINY, port)
    try:
        wait_for(lambda: ready(base), timeout=90, interval=0.3)
        yield base
    finally:
        stop(proc)


def test_drop_a_mix_and_play_the_stems(browser, served: str, tmp_path: Path) -> None:
    started = time.monotonic()
    bass, drums = tone_mix(2.0)
    refs = {"bass": bass, "drums": drums}
    for source, audio in refs.items():
        (tmp_path / f"{source}.wav").write_bytes(wav_bytes(audio))
    browser.get(served + "/")
    wait_state(browser, "ready", timeout=20)
    methods = [e.get_attribute("value") for e in browser.find_elements("name", "method")]
    assert methods == ["lass", "lqvae", "hybrid", "mlass-bp", "mlass-pe"]
    chosen = browser.find_element("css selector", "input[name=method]:checked")
    assert chosen.get_attribute("value") == "mlass-pe"  # the recommended one
    assert "recommended" in browser.find_element("id", "methods").text
    assert not browser.find_element("id", "advanced").get_attribute("open")

    drop_file(browser, "drop-zone", "mix.wav", wav_bytes(bass + drums))
    assert "mix.wav" in browser.find_element("id", "drop-text").text
    # bass + drums (tiny/plain also has `other`): exactly these two.
    for box in browser.find_elements("css selector", "#sources input"):
        if box.is_selected() != (box.get_attribute("value") in refs):
            box.click()
    browser.find_element("css selector", "#advanced summary").click()
    browser.find_element("id", "num_candidates").send_keys("2")
    browser.find_element("id", "seed").send_keys("7")
    for source in refs:
        selector = f"#references input[data-source={source}]"
        browser.find_element("css selector", selector).send_keys(str(tmp_path / f"{source}.wav"))
    browser.find_element("id", "submit").click()

    wait_state(browser, "finished", timeout=60)
    stems = browser.execute_script(
        """
        return [...document.querySelectorAll('#stems .stem')].map((stem) => {
          const audio = stem.querySelector('audio');
          const canvas = stem.querySelector('canvas');
          const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width,
                                                              canvas.height).data;
          let lit = 0;
          for (let i = 0; i < pixels.length; i += 4) lit += pixels[i] + pixels[i + 1] > 40;
          return {source: stem.dataset.source, src: audio.src, ready: audio.readyState,
                  duration: audio.duration, drawn: canvas.dataset.drawn, lit: lit};
        });
        """
    )
    assert [s["source"] for s in stems] == ["bass", "drums"], stems
    for stem in stems:
        assert stem["src"].startswith("blob:") and stem["ready"] >= 1, stem
        assert stem["duration"] == pytest.approx(2.0, abs=0.05), stem
        assert stem["drawn"] == "true" and stem["lit"] > 100, stem
    # The players really play: a second of bass advances the clock.
    played = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const audio = document.querySelector('#stems audio');
        audio.muted = true;
        audio.play().then(() => setTimeout(() => done(audio.currentTime), 600),
                          (e) => done(String(e)));
        """
    )
    assert isinstance(played, float) and played > 0.1, played
    assert len(browser.find_elements("css selector", "#score-table tbody tr")) == 2
    assert browser.find_element("id", "scores").is_displayed()
    links = browser.find_elements("css selector", "#stems a[download]")
    assert [a.get_attribute("download") for a in links] == ["bass.wav", "drums.wav"]
    assert browser.find_element("id", "download-zip").is_displayed()
    save_screenshot(browser, "web-page.png")
    print(f"browser flow: {time.monotonic() - started:.1f} s")

    # The offline API docs render too (Swagger UI and ReDoc from the package's files).
    browser.get(served + "/docs")
    wait_for(lambda: browser.find_elements("css selector", ".opblock"), timeout=20)
    browser.get(served + "/redoc")
    wait_for(lambda: browser.find_elements("css selector", "[data-section-id]"), timeout=20)


def test_the_page_asks_for_the_api_key_once(
    browser, settings: Settings, redis, fake_registration: WorkerInfo
) -> None:
    locked = settings.model_copy(update={"api_keys": KEY})
    with live_server(create_app(locked, redis)) as base:
        browser.get(base + "/")
        wait_for(lambda: browser.find_element("id", "key-panel").is_displayed(), timeout=20)
        assert not browser.find_element("id", "separate-form").is_displayed()
        browser.find_element("id", "api-key").send_keys("not-the-key-at-all")
        browser.find_element("css selector", "#key-form button").click()
        wait_for(lambda: browser.find_element("id", "key-error").is_displayed(), timeout=10)
        browser.find_element("id", "api-key").clear()
        browser.find_element("id", "api-key").send_keys(KEY)
        browser.find_element("css selector", "#key-form button").click()
        wait_state(browser, "ready", timeout=20)
        names = [e.get_attribute("value") for e in browser.find_elements("name", "method")]
        assert names == ["lass", "mlass-bp", "mlass-pe"]
        # Kept for the tab: a reload does not ask again.
        browser.refresh()
        wait_state(browser, "ready", timeout=20)
        assert not browser.find_element("id", "key-panel").is_displayed()

        # The API's error reaches the user in its words.
        drop_file(browser, "drop-zone", "notes.wav", b"these are not audio samples" * 40)
        browser.find_element("id", "submit").click()
        error = browser.find_element("id", "form-error")
        wait_for(error.is_displayed, timeout=10)
        assert "audio" in error.text.lower(), error.text

        # No worker serves this registration: the job waits in the queue until canceled, its
        # events followed with the key.
        drop_file(browser, "drop-zone", "mix.wav", wav_bytes(sum(tone_mix(0.5))))
        browser.find_element("id", "submit").click()
        wait_state(browser, "running", timeout=10)
        stage = browser.find_element("id", "stage")
        wait_for(lambda: stage.text.startswith("queued"), timeout=10)
        browser.find_element("id", "cancel").click()
        wait_state(browser, "ended", timeout=20)
        assert stage.text == "Canceled."
