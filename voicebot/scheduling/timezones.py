"""A lead's time zone: its own override, else its phone number's zone, else a default.

Uses ``phonenumbers``' time-zone data. A number whose prefix maps to one zone (or to
several zones that keep the same clock all year, such as Europe/London and
Europe/Jersey) gets that zone. A number spread over zones with different clocks (an
Australian or Russian mobile, a US toll-free number) gets all of them from
:func:`lead_timezones`, and the dialer calls it only when the window is open in every
one (the conservative choice: the callee may be in any); :func:`lead_timezone`, for
display, gives the default for it. A number unknown to the data gets the default.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

UNKNOWN_ZONE: Final = "Etc/Unknown"  # phonenumbers' answer for "no data"
# Zones are "the same clock" when their UTC offsets agree at these many instants,
# spread evenly over two years (catches different DST rules, not only base offsets).
CLOCK_SAMPLES: Final = 48
CLOCK_SAMPLE_EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
ZONE_SETS_CACHED: Final = 1024
# Phone → zone answers kept (a sweep of a 10,000-lead campaign re-reads the same numbers;
# a lookup costs ~25 µs, a cached one ~0.1 µs; ~150 bytes an entry).
NUMBERS_CACHED: Final = 16384


def lead_timezone(phone_e164: str, override: str | None, default: str) -> ZoneInfo:
    """The zone whose clock decides when ``phone_e164`` may be called.

    ``override`` (the lead's ``timezone`` column) wins when it names a real zone; an
    unknown override is ignored (it was validated on write, so only stale data has one).
    ``default`` must name a real zone (the campaign's or Settings' zone); a bad one
    raises ``ZoneInfoNotFoundError``.
    """
    if override:
        zone = _zone_or_none(override)
        if zone is not None:
            return zone
    found = number_zone(phone_e164)
    return ZoneInfo(found) if found is not None else ZoneInfo(default)


def lead_timezones(phone_e164: str, override: str | None, default: str) -> tuple[ZoneInfo, ...]:
    """Every zone whose clock may be the callee's: the override's zone alone when it is a
    real zone, else the number's zones (one per distinct clock), else ``default``."""
    if override:
        zone = _zone_or_none(override)
        if zone is not None:
            return (zone,)
    found = number_zones(phone_e164)
    return tuple(ZoneInfo(name) for name in found) if found else (ZoneInfo(default),)


@lru_cache(maxsize=NUMBERS_CACHED)
def number_zones(phone_e164: str) -> tuple[str, ...]:
    """The zones of a phone number's possible clocks (one name per distinct clock, sorted);
    empty when it is unparseable or unknown to the data."""
    zones = _raw_zones(phone_e164)
    single = _one_clock(zones) if zones else None
    if single is not None:
        return (single,)
    clocks: dict[tuple[timedelta | None, ...], str] = {}
    for name in sorted(zones):
        zone = _zone_or_none(name)
        if zone is not None:
            clocks.setdefault(_clock(zone), name)
    return tuple(sorted(clocks.values()))


def _clock(zone: ZoneInfo) -> tuple[timedelta | None, ...]:
    return tuple(zone.utcoffset(instant) for instant in _sample_instants())


@lru_cache(maxsize=1)
def _sample_instants() -> tuple[datetime, ...]:
    step = timedelta(days=730 / CLOCK_SAMPLES)
    return tuple(CLOCK_SAMPLE_EPOCH + i * step for i in range(CLOCK_SAMPLES))


def _raw_zones(phone_e164: str) -> tuple[str, ...]:
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(phone_timezones.time_zones_for_number(number))
    if not zones or zones == (UNKNOWN_ZONE,):
        # Numbers the metadata cannot classify still carry a country/area prefix.
        zones = tuple(phone_timezones.time_zones_for_geographical_number(number))
    return tuple(z for z in zones if z != UNKNOWN_ZONE)


@lru_cache(maxsize=NUMBERS_CACHED)
def number_zone(phone_e164: str) -> str | None:
    """The one zone of a phone number's clock, or None (unparseable, unknown or several)."""
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return None
    zones = tuple(phone_timezones.time_zones_for_number(number))
    if not zones or zones == (UNKNOWN_ZONE,):
        # Numbers the metadata cannot classify still carry a country/area prefix.
        zones = tuple(phone_timezones.time_zones_for_geographical_number(number))
    zones = tuple(z for z in zones if z != UNKNOWN_ZONE)
    return _one_clock(zones) if zones else None


@lru_cache(maxsize=ZONE_SETS_CACHED)
def _one_clock(zones: tuple[str, ...]) -> str | None:
    loaded = [z for z in (_zone_or_none(name) for name in zones) if z is not None]
    if not loaded:
        return None
    step = timedelta(days=730 / CLOCK_SAMPLES)
    instants = [CLOCK_SAMPLE_EPOCH + i * step for i in range(CLOCK_SAMPLES)]
    first = loaded[0]
    same = all(
        zone.utcoffset(instant) == first.utcoffset(instant)
        for zone in loaded[1:]
        for instant in instants
    )
    return first.key if same else None


def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
