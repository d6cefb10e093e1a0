#!/usr/bin/env python3
"""The API browser (/api-docs) in a real browser: headless Chromium (Debian's) driven by selenium.

Against a fresh local server it opens the page, sees the server's own /openapi.yaml rendered (its
title, every API's tag, one block per operation of the document, no error), then, as a person
would, authorizes with the server's key and runs "Try it out" on `GET /v1/parents/{kind}/{id}`
for a parent registered beforehand: a 200 with the parent. Screenshots go to the log folder.
Every request the browser made is read back from its performance log: all of them went to the
local server, and no script error (nor Content-Security-Policy violation) was logged.

Usage: scripts/api-docs-test.py SERVER_BINARY LOG_DIR
"""
import argparse, json, os, sys, tempfile, time
import urllib.request

import yaml
from selenium.webdriver.common.by import By

import browser as web
from browser import Network, check, wait


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("log_dir")
    args = ap.parse_args()
    os.makedirs(args.log_dir, exist_ok=True)
    server = web.Server(args.binary, tempfile.mkdtemp(prefix="api-docs-test-"), args.log_dir,
                        "api-docs-server.log")
    with urllib.request.urlopen(server.base + "/openapi.yaml") as r:
        document = yaml.safe_load(r.read())
    operations = sum(1 for item in document["paths"].values()
                     for method in item if method in ("get", "put", "post", "delete"))
    tags = [t["name"] for t in document["tags"]]
    put = urllib.request.Request(server.base + "/v1/parents/profile/42", method="PUT",
                                 data=b'{"email":"jane@example.com"}',
                                 headers={"X-API-KEY": server.key, "Content-Type": "application/json"})
    with urllib.request.urlopen(put) as r:
        check(r.status == 201, "registered profile/42 to try the API on")

    driver = web.browser()
    net = Network(driver)
    t0 = time.time()
    try:
        driver.get(server.base + "/api-docs")
        blocks = lambda: driver.find_elements(By.CSS_SELECTOR, ".opblock")
        wait(driver, "the operations to render", lambda: len(blocks()) >= operations)
        check(len(blocks()) == operations, f"one block for each of the document's {operations} operations")
        title = driver.find_element(By.CSS_SELECTOR, ".info .title").text
        check(title.startswith(document["info"]["title"]) and "OAS 3.1" in title, f"the title: {title!r}")
        shown = [e.get_attribute("data-tag") for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-tag")]
        check(shown == tags, f"every API under its own tag: {shown}")
        check(not driver.find_elements(By.CSS_SELECTOR, ".errors-wrapper"), "no error rendering the document")
        driver.save_screenshot(os.path.join(args.log_dir, "api-docs.png"))

        # As a person would: the key under "Authorize", then "Try it out".
        driver.find_element(By.CSS_SELECTOR, "button.authorize").click()
        wait(driver, "the authorization dialog",
             lambda: driver.find_elements(By.CSS_SELECTOR, ".modal-ux .auth-container input"))
        driver.find_element(By.CSS_SELECTOR, ".modal-ux .auth-container input").send_keys(server.key)
        driver.find_element(By.CSS_SELECTOR, ".modal-ux .auth-container .auth-btn-wrapper button.authorize").click()
        driver.find_element(By.CSS_SELECTOR, ".modal-ux button.btn-done").click()
        op = driver.find_element(By.ID, "operations-Native_API-native-get-parent")
        op.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
        wait(driver, "Try it out", lambda: op.find_elements(By.CSS_SELECTOR, "button.try-out__btn"))
        op.find_element(By.CSS_SELECTOR, "button.try-out__btn").click()
        for name, value in (("kind", "profile"), ("id", "42")):
            field = op.find_element(By.CSS_SELECTOR, f"tr[data-param-name='{name}'] input")
            field.clear()
            field.send_keys(value)
        op.find_element(By.CSS_SELECTOR, "button.execute").click()
        status = lambda: op.find_elements(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status")
        wait(driver, "the answer", status)
        body = op.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_description pre").text
        check(status()[0].text.strip() == "200" and json.loads(body)["email"] == "jane@example.com",
              f"Try it out answered 200 with the parent ({status()[0].text.strip()} {body[:80]!r})")
        driver.execute_script("arguments[0].scrollIntoView()", op)
        driver.save_screenshot(os.path.join(args.log_dir, "api-docs-try-it-out.png"))

        web.check_all_local(net, server)
        errors = web.script_errors(driver)
        check(not errors, f"no script errors nor policy violations in the browser's console {errors[:3]}")
        print(f"API browser test: passed in {time.time() - t0:.1f} s; screenshots in {args.log_dir}")
    except BaseException:
        web.save_failure(driver, args.log_dir, "api-docs")
        raise
    finally:
        driver.quit()
        server.stop()


if __name__ == "__main__":
    main()
