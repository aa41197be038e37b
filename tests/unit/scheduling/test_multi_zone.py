"""A number spanning several clocks is dialed only when its window is open on all of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import time_machine

from voicebot.scheduling import CallingWindow, lead_timezones, number_zones

WINDOW = CallingWindow.from_fields(
    window_days="sun,mon,tue,wed,thu,fri,sat",
    window_start="09:00",
    window_end="20:00",
    calendar="none",
)
AU_MOBILE = "+61412345678"
RU_MOBILE = "+79161234567"


def test_spanning_numbers_get_every_clock_and_single_ones_one() -> None:
    """An Australian or Russian mobile gets every clock it may be on (not the campaign's
    zone); an Alaska (+1 907), Sydney or Israeli number one; an override wins."""
    au = {zone.key for zone in lead_timezones(AU_MOBILE, None, "Asia/Jerusalem")}
    assert {"Australia/Perth", "Australia/Sydney", "Indian/Cocos"} <= au
    assert "Asia/Jerusalem" not in au
    ru = number_zones(RU_MOBILE)
    assert "Europe/Moscow" in ru and "Asia/Anadyr" in ru
    assert number_zones("+19072223333") == ("America/Juneau",)
    assert number_zones("+61298765432") == ("Australia/Sydney",)
    assert [z.key for z in lead_timezones(AU_MOBILE, "Australia/Perth", "UTC")] == [
        "Australia/Perth"
    ]
    assert [z.key for z in lead_timezones("garbage", None, "Asia/Jerusalem")] == ["Asia/Jerusalem"]


@time_machine.travel(datetime(2027, 1, 11, 23, 0, tzinfo=UTC), tick=False)
def test_australian_mobile_waits_for_its_westernmost_clock() -> None:
    """Frozen at 10:00 in Sydney (05:30 on Cocos): not dialed until 09:00 on Cocos (02:30
    UTC), when Lord Howe is 13:30; a Sydney landline is dialed at once."""
    now = datetime.now(UTC)
    zones = lead_timezones(AU_MOBILE, None, "Australia/Sydney")
    opens = WINDOW.next_open_in_all(now, zones)
    assert opens == datetime(2027, 1, 12, 2, 30, tzinfo=UTC)
    assert all(WINDOW.is_open(opens, zone) for zone in zones)
    assert not all(WINDOW.is_open(opens - timedelta(minutes=1), zone) for zone in zones)
    sydney = lead_timezones("+61298765432", None, "Australia/Sydney")
    assert WINDOW.next_open_in_all(now, sydney) == now


@time_machine.travel(datetime(2027, 1, 12, 5, 0, tzinfo=UTC), tick=False)
def test_russian_mobile_gets_the_hour_open_from_kaliningrad_to_chukotka() -> None:
    """Frozen at 08:00 Moscow: a Russian mobile is dialed only in the hour when it is past
    09:00 in the westernmost zone and before 20:00 in the easternmost (07:00-08:00 UTC)."""
    now = datetime.now(UTC)
    zones = lead_timezones(RU_MOBILE, None, "Europe/Moscow")
    opens = WINDOW.next_open_in_all(now, zones)
    assert opens == datetime(2027, 1, 12, 7, 0, tzinfo=UTC)
    closes = min(WINDOW.closes_at(opens, zone) or opens for zone in zones)
    assert closes == datetime(2027, 1, 12, 8, 0, tzinfo=UTC)


def test_clocks_that_never_overlap_never_open() -> None:
    """A one-hour window on two clocks seven hours apart never opens on both: no dial
    (None), where the campaign's zone alone would have dialed every day."""
    short = CallingWindow.from_fields(
        window_days="sun,mon,tue,wed,thu,fri,sat",
        window_start="09:00",
        window_end="10:00",
        calendar="none",
    )
    zones = (ZoneInfo("Asia/Jerusalem"), ZoneInfo("Asia/Tokyo"))
    assert short.next_open_in_all(datetime(2027, 1, 12, tzinfo=UTC), zones) is None


def test_toll_free_opens_only_when_every_clock_is_inside() -> None:
    """A US toll-free number (Guam to Pago Pago) opens only at an instant inside
    09:00-20:00 on each of its clocks."""
    zones = lead_timezones("+18005551234", None, "America/New_York")
    opens = WINDOW.next_open_in_all(datetime(2027, 1, 12, tzinfo=UTC), zones)
    assert opens is not None
    assert all(WINDOW.is_open(opens, zone) for zone in zones)
