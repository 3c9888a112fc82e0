#!/usr/bin/env python3
"""The test client page (/client/ of the api) in a real browser, against a running pipeline.

Drives headless Debian chromium through chromium-driver (scripts/webdriver.py): generates products,
creates a customer (then the same email again: the 409 must be shown, then a bad email: the 422),
creates an order with three items, changes its status, renames and moves the customer, deletes the
order; after each action it waits until the page's activity list says ClickHouse shows the change
and checks the page's star-schema view shows it too (the row, its denormalised columns, its
absence after the delete). Prints each action's time until visible in ClickHouse.

scripts/test-client-page.sh runs it through scripts/kubelet.py against the operator's own pods:

    API=http://127.0.0.1:PORT CH_DATABASE=db [SCREENSHOT=docs/client-page.png] scripts/test-client-page.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webdriver import Chromium, WebDriverError  # noqa: E402

API = os.environ["API"].rstrip("/")
CH_DATABASE = os.environ["CH_DATABASE"]
SCREENSHOT = os.environ.get("SCREENSHOT")
TIMEOUT = 60


class Failed(Exception):
    pass


def log(message: str) -> None:
    print(f"client-page: {message}", flush=True)


def wait(what: str, probe, timeout: float = TIMEOUT):
    """Calls probe() until it answers something true; fails naming `what` and the last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except WebDriverError as error:
            last = error
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise Failed(f"{what}: not after {timeout} s (last: {last!r})")


class Page:
    def __init__(self, browser: Chromium) -> None:
        self.b = browser
        self.timings: list[tuple[str, str, int]] = []

    def error(self) -> dict | None:
        return self.b.script("""
            const e = document.getElementById('error');
            if (e.hidden) return null;
            return {status: document.getElementById('error-status').textContent,
                    message: document.getElementById('error-message').textContent,
                    details: [...document.querySelectorAll('#error-details li')].map(li => li.textContent)};""")

    def fill(self, selector: str, text: str) -> None:
        self.b.find(selector).type(text)

    def choose(self, select: str, value) -> None:
        self.b.find(f'{select} option[value="{value}"]').click()
        chosen = self.b.find(select).property("value")
        if str(chosen) != str(value):
            raise Failed(f"{select}: chose {value}, the select says {chosen}")

    def act(self, what: str, click: str) -> dict:
        """Clicks, then waits for the newest activity entry to be settled; returns its timings."""
        before = self.b.script("return state.actions;")
        self.b.find(click).click()

        def settled():
            error = self.error()
            if error:
                raise Failed(f"{what}: the page shows an error: {error}")
            return self.b.script("""
                const item = document.querySelector('#activity li');
                if (!item || Number(item.dataset.action) <= arguments[0] || item.dataset.state === 'waiting') return null;
                return {state: item.dataset.state, text: item.textContent,
                        targets: [...item.querySelectorAll('.target')].map(t => [t.dataset.table, t.dataset.state, Number(t.dataset.ms)])};""",
                                 before)

        entry = wait(f"{what}: the activity entry", settled)
        if entry["state"] != "visible":
            raise Failed(f"{what}: {entry['text']}")
        for table, _state, ms in entry["targets"]:
            self.timings.append((what, table, ms))
        log(f"ok: {entry['text']}")
        return entry

    def star_cell(self, table: str, key, column: str):
        return self.b.script("""
            const cell = document.querySelector(`#star-${arguments[0]} tr[data-key="${arguments[1]}"] td[data-column="${arguments[2]}"]`);
            return cell ? cell.textContent : null;""", table, str(key), column)

    def star_rows(self, table: str, column: str, value) -> list[dict]:
        """Rows of the page's star view of `table` whose `column` is `value`, as {column: text}."""
        return self.b.script("""
            return [...document.querySelectorAll(`#star-${arguments[0]} tbody tr`)]
                .map(tr => Object.fromEntries([...tr.querySelectorAll('td')].map(td => [td.dataset.column, td.textContent])))
                .filter(row => row[arguments[1]] === arguments[2]);""", table, column, str(value))

    def expect_star(self, what: str, table: str, column: str, value, check, count: int | None = None) -> None:
        def probe():
            rows = self.star_rows(table, column, value)
            if count is not None and len(rows) != count:
                return None
            return all(check(r) for r in rows)

        wait(f"{what}: the star view of {table}", probe)
        log(f"ok: the star view of {table} shows {what}")


def run(browser: Chromium) -> Page:
    page = Page(browser)
    b = browser
    b.get(f"{API}/client/")
    wait("the star view connected", lambda: CH_DATABASE in b.find("#star-status").text)
    log(f"ok: the page is served and its star view reads ClickHouse database {CH_DATABASE}")

    page.act("3 random products", "#generate-products")
    products = wait("the products", lambda: b.script("return state.products.slice(-3).map(p => p.id);"))

    run_id = str(int(time.time()))
    email = f"grace.{run_id}@example.com"
    page.fill("#customer-email", email)
    page.fill("#customer-name", "Grace Hopper")
    page.fill("#customer-country", "USA")
    page.fill("#customer-city", "Arlington")
    page.act("create customer", "#customer-create")
    customer = b.script("return state.customers[state.customers.length - 1].id;")
    page.expect_star("the new customer", "customer_dim", "customer_id", customer,
                     lambda r: r["name"] == "Grace Hopper" and r["city"] == "Arlington", count=1)

    # The API's errors, as the reference client shows them: error.message and the fields named.
    b.find("#customer-create").click()
    error = wait("the 409 for a duplicate email", page.error)
    if not (error["status"].startswith("409") and "already exists" in error["message"]
            and any(d.startswith("email") for d in error["details"])):
        raise Failed(f"the duplicate email: unexpected error shown: {error}")
    log(f"ok: a duplicate email shows {error['status']}: {error['message']} {error['details']}")
    page.fill("#customer-email", "not-an-email")
    b.find("#customer-create").click()
    wait("the 422 replacing the 409", lambda: (page.error() or {}).get("status", "").startswith("422"))
    error = page.error()
    if not any(d.startswith("email") for d in error["details"]):
        raise Failed(f"the bad email: the 422 does not name email: {error}")
    log(f"ok: a bad email shows {error['status']}: {error['message']} {error['details']}")
    b.find("#error-close").click()

    page.choose("#order-customer", customer)
    page.choose("#order-status", "paid")
    page.choose("#order-item-count", 3)
    for index, product in enumerate(products):
        page.choose(f"#order-line-{index}-product", product)
        page.fill(f"#order-line-{index}-quantity", str(index + 1))
    page.act("create order with 3 items", "#order-create")
    order = b.script("return state.orders[state.orders.length - 1].id;")
    page.expect_star("the order with its customer's name", "order_fact", "order_id", order,
                     lambda r: r["customer_name"] == "Grace Hopper" and r["status"] == "paid", count=1)
    page.expect_star("the order's 3 items, looked up", "orderitem_fact", "order_id", order,
                     lambda r: r["product_name"] != "" and r["order_status"] == "paid"
                     and r["customer_city"] == "Arlington", count=3)

    page.choose(f'#orders tr[data-order-id="{order}"] select.status', "shipped")
    page.act("change status", f'#orders tr[data-order-id="{order}"] button.save-status')
    page.expect_star("the new status", "order_fact", "order_id", order, lambda r: r["status"] == "shipped", count=1)
    page.expect_star("the new status in the items", "orderitem_fact", "order_id", order,
                     lambda r: r["order_status"] == "shipped", count=3)

    page.choose("#rename-customer", customer)
    page.fill("#rename-name", "Grace Brewster Hopper")
    page.fill("#rename-city", "New York")
    entry = page.act("rename and move customer", "#rename-submit")
    tables = sorted(t for t, _s, _ms in entry["targets"])
    if tables != ["customer_dim", "order_fact", "orderitem_fact"]:
        raise Failed(f"the rename was timed in {tables}, not in customer_dim, order_fact and orderitem_fact")
    page.expect_star("the renamed customer", "customer_dim", "customer_id", customer,
                     lambda r: r["name"] == "Grace Brewster Hopper" and r["city"] == "New York", count=1)
    page.expect_star("the new name in the order", "order_fact", "order_id", order,
                     lambda r: r["customer_name"] == "Grace Brewster Hopper", count=1)
    page.expect_star("the new city in the items", "orderitem_fact", "order_id", order,
                     lambda r: r["customer_city"] == "New York", count=3)
    if SCREENSHOT:
        b.script("window.scrollTo(0, 0);")
        time.sleep(1.2)  # one more refresh of the star view, then the picture
        b.screenshot(Path(SCREENSHOT))
        log(f"screenshot: {SCREENSHOT}")

    page.act("delete order", f'#orders tr[data-order-id="{order}"] button.delete')
    page.expect_star("no row of the deleted order", "order_fact", "order_id", order, lambda r: True, count=0)
    page.expect_star("no item of the deleted order", "orderitem_fact", "order_id", order, lambda r: True, count=0)
    return page


def main() -> int:
    log_dir = Path(os.environ.get("KUBELET_LOGS", "/tmp"))
    started = time.monotonic()
    try:
        with Chromium(width=1800, height=1150, log=log_dir / "chromedriver.log") as browser:
            page = run(browser)
    except (Failed, WebDriverError, OSError) as error:
        log(f"FAILED: {error}")
        return 1
    print("\nTime from the click to the change being visible in ClickHouse (measured by the page):")
    for what, table, ms in page.timings:
        print(f"  {ms:6d} ms  {what}: {table}")
    log(f"passed in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
