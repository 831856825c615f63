"""The parallel period's old-MX check in the background of ``watch``, and how it is told."""

from __future__ import annotations

import threading
import time

from cutover import notify, render
from cutover.readiness import FAILED, OK, Check
from cutover.readiness.config import ReadyConfig
from cutover.readiness.old import OldMailWatch
from cutover.readiness.run import check_old_mail
from cutover.readiness.targets import Server, Targets
from cutover.times import iso_precise

TARGETS = Targets("example.com", (), (), (Server("mail.example.com", ("127.0.0.2",)),), None, "", None, ())
ACCEPTS = Check("old-mx", "127.0.0.2:25", "mail.example.com", OK, "250 2.1.5 Ok")
REFUSES = Check("old-mx", "127.0.0.2:25", "mail.example.com", FAILED, "refuses mail for this domain: 550 5.1.1 unknown")


class Asker:
    """Answers the old-MX question as told, counting the questions."""

    def __init__(self, *answers: Check) -> None:
        self.answers = list(answers)
        self.asked = 0
        self.lock = threading.Lock()

    def __call__(self, targets: Targets, config: ReadyConfig) -> list[Check]:
        with self.lock:
            self.asked += 1
            return [self.answers[min(self.asked, len(self.answers)) - 1]]


def test_the_old_mx_is_asked_at_once_then_every_old_every_and_a_refusal_is_loud():
    asker = Asker(ACCEPTS, REFUSES)
    clock = [time.time()]
    watch = OldMailWatch(TARGETS, ReadyConfig(old_every=3600), None, check=asker, clock=lambda: clock[0]).start()
    try:
        assert watch.wait_first(5)
        first = watch.snapshot()
        assert first["accepting"] is True and first["message"] == "" and first["hosts"] == ["mail.example.com"]
        assert asker.asked == 1
        clock[0] += 3601
        deadline = time.time() + 5
        while time.time() < deadline and watch.snapshot()["accepting"] is not False:
            time.sleep(0.05)
        second = watch.snapshot()
    finally:
        watch.close()
    assert second["accepting"] is False and asker.asked == 2
    assert second["message"] == ("the old mail server mail.example.com (127.0.0.2:25) no longer accepts mail for the domain: "
                                 "mail still sent there bounces (refuses mail for this domain: 550 5.1.1 unknown)")


def test_after_the_parallel_period_the_old_mx_is_not_asked():
    asker = Asker(ACCEPTS)
    watch = OldMailWatch(TARGETS, ReadyConfig(), until=time.time() - 1, check=asker).start()
    assert not watch.wait_first(0.5)
    watch.close()
    assert asker.asked == 0 and watch.snapshot()["accepting"] is None


def test_a_restarted_watch_reuses_a_recent_answer():
    stored = {"old_mail": {"checked": iso_precise(time.time() - 60), "checks": [REFUSES.as_dict()]}}
    asker = Asker(ACCEPTS)
    watch = OldMailWatch(TARGETS, ReadyConfig(old_every=3600), None, previous=stored, check=asker).start()
    try:
        assert watch.wait_first(0.1)
        assert watch.snapshot()["accepting"] is False
    finally:
        watch.close()
    assert asker.asked == 0


def test_documentation_addresses_are_not_asked():
    targets = Targets("example.com", (), (), (Server("mail.example.com", ("192.0.2.25",)),), None, "", None, ())
    (check,) = check_old_mail(targets, ReadyConfig())
    assert check.state == "skipped" and check.ok and "192.0.2.25 is a documentation address" in check.detail


def test_status_and_notifications_say_when_the_old_mx_stops():
    def doc(accepting: bool, message: str = "") -> dict:
        return {"zone": "example.com.", "round": 3, "time": "2026-11-28T12:00:00.000Z", "records": [],
                "verdict": {"retire": False}, "old_mail": {"hosts": ["mail.example.com"], "accepting": accepting,
                                                           "checked": "2026-11-28T12:00:00.000Z", "every": 3600.0,
                                                           "until": None, "message": message, "checks": []}}
    stopped = doc(False, "the old mail server mail.example.com (127.0.0.2:25) no longer accepts mail for the domain")
    (event,) = notify.round_events(doc(True), stopped)
    assert event.kind == "old-mx" and "no longer accepts mail" in event.text
    assert notify.round_events(stopped, stopped) == []  # said once
    (back,) = notify.round_events(stopped, doc(True))
    assert "accepts mail for the domain again" in back.text
    assert render.old_mail_lines(stopped) == [f"  OLD MX REFUSES MAIL (checked 2026-11-28T12:00:00.000Z): {stopped['old_mail']['message']}"]
    assert "still accepts mail" in render.old_mail_lines(doc(True))[0]


def test_the_check_table_says_ready_or_not_with_each_servers_words():
    text = render.readiness_text("example.com.", "plan.yaml", [ACCEPTS, REFUSES])
    assert text.startswith("example.com. (plan.yaml): NOT READY: 1 of 2 checks")
    assert "550 5.1.1 unknown" in text and "127.0.0.2:25" in text
    assert render.readiness_text("example.com.", "plan.yaml", [ACCEPTS]).startswith("example.com. (plan.yaml): ready")
    assert "nothing to check" in render.readiness_text("example.com.", "plan.yaml", [])
