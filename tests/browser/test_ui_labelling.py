"""The labelling page in the browser, on the queue the replay's scoring runs filled (``score_signals`` captures
every champion prediction whose decision confidence lies in the band): reached from the ModelWatch nav, one item
labelled from its row with a note (checked in the monitoring DB, recorded with the logged-in user's name), and a
stale row's answer refused with the API's message. Runs after test_ui_actions.py (file order); test_pages.py reads
nothing of the queue.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

MODEL = "spx_signal"
PAGE = "/modelwatch/labelling"


def queue_item(stack, item_id: int) -> dict:
    (row,) = stack.query(
        "SELECT status, manual_label, labelled_by, notes FROM active_learning_queue WHERE item_id = %(i)s",
        {"i": item_id},
    )
    return row


def test_label_an_item_from_the_labelling_page(stack, page, console, screenshot):
    status, body = stack.api("GET", f"/modelwatch/active-learning/items?model={MODEL}&limit=3")
    assert status == 200, body
    assert body["total"] >= 2, f"the replay's scoring queued fewer than 2 pending items: {body}"
    item = body["items"][0]  # the highest priority, oldest bar: the page's first row
    iid = item["item_id"]
    (counts,) = stack.query(
        "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, "
        "count(*) FILTER (WHERE status = 'labelled') AS labelled FROM active_learning_queue WHERE model_name = %(m)s",
        {"m": MODEL},
    )

    page.goto(stack.url("/modelwatch/"))
    page.get_by_role("link", name="Labelling", exact=True).click()
    page.wait_for_url(re.compile(r"/modelwatch/labelling$"))
    page.locator("form.filters select[name=model]").select_option(MODEL)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(rf"/modelwatch/labelling\?model={MODEL}$"))
    rows = page.locator("tr[id^=item-]")
    expect(rows.first).to_have_attribute("id", f"item-{iid}")
    row = page.locator(f"#item-{iid}")
    expect(row.locator(".priority")).to_have_text(str(item["priority"]))
    expect(row.locator(".symbol")).to_have_text(item["symbol"])
    expect(row.locator(".date")).to_have_text(item["ts"][:10])
    expect(row.locator(".predicted")).to_have_text(item["predicted_label"])
    expect(row.locator(".confidence")).to_have_text(f"{item['confidence']:.3f}")
    queue = page.locator(f"#queue-{MODEL}")
    expect(queue.locator(".pending")).to_have_text(str(counts["pending"]))
    expect(queue.locator(".labelled")).to_have_text(str(counts["labelled"]))
    console.assert_clean("the labelling page")
    screenshot("labelling.png")

    # a label other than the model's answer, with a note
    label = next(lab for lab in ("SELL", "HOLD", "BUY") if lab != item["predicted_label"])
    row.locator("input[name=note]").fill("browser test: range-bound week")
    row.get_by_role("button", name=label, exact=True).click()
    expect(page.locator("#action-status")).to_have_text(f"Item #{iid} labelled {label} by admin.")
    assert queue_item(stack, iid) == {
        "status": "labelled",
        "manual_label": label,
        "labelled_by": "admin",
        "notes": "browser test: range-bound week",
    }
    # the page reloads: the item left the pending list, the counts moved
    expect(page.locator(f"#item-{iid}")).to_have_count(0, timeout=10_000)
    expect(queue.locator(".labelled")).to_have_text(str(counts["labelled"] + 1))
    expect(queue.locator(".pending")).to_have_text(str(counts["pending"] - 1))

    # a row answered elsewhere meanwhile (here: skipped through the API) is refused with the API's message
    nxt = int((rows.first.get_attribute("id") or "").removeprefix("item-"))
    status, body = stack.api("POST", f"/modelwatch/active-learning/items/{nxt}/skip", {"note": "browser test"})
    assert status == 200 and body["by"] == "admin", body
    console.allow(r"status of 409")  # the browser logs the refused request itself
    page.locator(f"#item-{nxt}").get_by_role("button", name="BUY", exact=True).click()
    message = page.locator("#action-status")
    expect(message).to_have_text(
        re.compile(
            rf"^Refused \(409\): item {nxt} \({MODEL} v\d+ .+\) is skipped \(skipped by admin at .+ UTC\): "
            r"only a pending item can be labelled or skipped$"
        )
    )
    expect(message).to_have_class("critical")
    assert queue_item(stack, nxt) == {
        "status": "skipped",
        "manual_label": None,
        "labelled_by": "admin",
        "notes": "browser test",
    }
    console.assert_clean("the labelling page's actions")
    screenshot("labelling_refused.png")
