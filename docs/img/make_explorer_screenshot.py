"""Takes docs/img/explorer.png, the README's picture of the graph explorer: the page of a profiled
MLP training step (examples/render_graphs.py), with the hidden layer's kernel selected and opened
in place, in headless Chromium (Debian's chromium and chromium-driver, driven by selenium).

    python docs/img/make_explorer_screenshot.py [--backend numpy|opencl]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "examples"))

from render_graphs import explorer_page  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1400,820"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="opencl")
    p.add_argument("--out", default=os.path.join(HERE, "explorer.png"))
    args = p.parse_args()
    from selenium import webdriver
    from selenium.webdriver import ActionChains
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    work = tempfile.mkdtemp(prefix="sg-shot-")
    page = explorer_page(args.backend, os.path.join(work, "mlp_step.html"))
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in FLAGS + [f"--user-data-dir={os.path.join(work, 'profile')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                              options=options)
    try:
        driver.get("file://" + page)
        kernel = driver.execute_script(
            "const d = sgExplorer.data; return d.steps[d.steps.length - 1].nodes.find("
            "s => d.nodes[s].op.startsWith('Dot→Composite{sigmoid'));")
        node = driver.find_element(By.ID, kernel)
        ActionChains(driver).click(node).double_click(node).perform()
        time.sleep(0.3)
        driver.save_screenshot(args.out)
    finally:
        driver.quit()
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {os.path.relpath(args.out)} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
