"""runtime.cron: robfig/cron v3's next fire times, from the compiled CronSpec.

Expected times are robfig's, measured in shared/spec/cron-dialect.md (start 2026-01-01T00:00
UTC, a Thursday, unless a row says otherwise), plus the rules of spec §7."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from flowlord.compiler.ast import CronSpec
from flowlord.compiler.diagnostics import Sink
from flowlord.compiler.parse_cron import parse_cron
from flowlord.compiler.source import MappedText
from flowlord.runtime.cron import fire_times, fires_at, next_fire
from flowlord.runtime.timefmt import go_add_date, go_date

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
START = datetime(2026, 1, 1, tzinfo=UTC)


def spec(text: str) -> CronSpec:
    sink = Sink()
    parsed = parse_cron(MappedText.verbatim("<t>", text, 0), sink)
    assert parsed is not None, [d.message for d in sink.diagnostics]
    return parsed


def with_values(text: str, **values: tuple[int, ...]) -> CronSpec:
    """A spec whose fields are replaced, for schedules the compiler rejects (they never fire)."""
    parsed = spec(text)
    fields = tuple(
        f.model_copy(update={"values": values[f.name], "star": False}) if f.name in values else f
        for f in parsed.fields
    )
    return parsed.model_copy(update={"fields": fields})


def upcoming(cron: CronSpec | str, start: datetime, n: int, tz=UTC) -> list[str]:
    cron = spec(cron) if isinstance(cron, str) else cron
    out, t = [], start
    for _ in range(n):
        t = next_fire(cron, t, tz)
        if t is None:
            out.append(None)
            break
        out.append(t.isoformat())
    return out


def local(*fields, tz=NY) -> datetime:
    return datetime(*fields, tzinfo=tz)


@pytest.mark.parametrize(
    "expr, expected",
    [
        # seconds first with 6 fields
        ("0 */5 * * * *", ["2026-01-01T00:05:00+00:00", "2026-01-01T00:10:00+00:00", "2026-01-01T00:15:00+00:00"]),
        ("0 0 1 * * *", ["2026-01-01T01:00:00+00:00", "2026-01-02T01:00:00+00:00", "2026-01-03T01:00:00+00:00"]),
        # 5 fields: seconds are 0
        ("30 2 * * *", ["2026-01-01T02:30:00+00:00", "2026-01-02T02:30:00+00:00", "2026-01-03T02:30:00+00:00"]),
        # `?` is `*`, in any field (croniter rejects it outside dom/dow)
        ("? 0 9 * * *", ["2026-01-01T09:00:00+00:00", "2026-01-01T09:00:01+00:00", "2026-01-01T09:00:02+00:00"]),
        # names, lists, ranges with steps
        ("0 0 9 * JAN-MAR MON-FRI", ["2026-01-01T09:00:00+00:00", "2026-01-02T09:00:00+00:00", "2026-01-05T09:00:00+00:00"]),
        ("0 0 0 * * MON-FRI/2", ["2026-01-02T00:00:00+00:00", "2026-01-05T00:00:00+00:00", "2026-01-07T00:00:00+00:00"]),
        ("0 0 0 1 JAN-DEC/3 *", ["2026-04-01T00:00:00+00:00", "2026-07-01T00:00:00+00:00", "2026-10-01T00:00:00+00:00"]),
        ("5/15 * * * *", ["2026-01-01T00:05:00+00:00", "2026-01-01T00:20:00+00:00", "2026-01-01T00:35:00+00:00"]),
        ("*/61 * * * * *", ["2026-01-01T00:01:00+00:00", "2026-01-01T00:02:00+00:00", "2026-01-01T00:03:00+00:00"]),
        # descriptors
        ("@yearly", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
        ("@annually", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
        ("@monthly", ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"]),
        ("@weekly", ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"]),
        ("@daily", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
        ("@midnight", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
        ("@hourly", ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]),
        # Feb 29 exists in 2028
        ("0 0 0 29 2 *", ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]),
    ],
)
def test_next_times(expr, expected):
    assert upcoming(expr, START, len(expected)) == expected


# --- day of month / day of week: AND when either has the star bit, else OR -----------------------


@pytest.mark.parametrize(
    "expr, expected",
    [
        # both restricted: OR (13th, or any Friday)
        ("0 0 9 13 * FRI", ["2026-01-02", "2026-01-09", "2026-01-13", "2026-01-16"]),
        # a star in either field: AND
        ("0 0 9 * * FRI", ["2026-01-02", "2026-01-09", "2026-01-16", "2026-01-23"]),
        ("0 0 9 ? * FRI", ["2026-01-02", "2026-01-09", "2026-01-16", "2026-01-23"]),
        # `*/1` keeps the star bit (croniter reads these as every day)
        ("0 0 9 13 * */1", ["2026-01-13", "2026-02-13", "2026-03-13", "2026-04-13"]),
        ("0 0 9 */1 * FRI", ["2026-01-02", "2026-01-09", "2026-01-16", "2026-01-23"]),
        # `1-31`, `*/2`, `0-6`, `SUN-SAT` are restrictions, not stars: OR
        ("0 0 9 1-31 * FRI", ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]),
        ("0 0 9 13 * 0-6", ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]),
        ("0 0 9 13 * SUN-SAT", ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]),
        ("0 0 9 */2 * FRI", ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05"]),
        # spec §7: `0 0 */2 * MON` is odd days or Mondays
        ("0 0 */2 * MON", ["2026-01-03", "2026-01-05", "2026-01-07", "2026-01-09", "2026-01-11", "2026-01-12"]),
    ],
)
def test_dom_dow_rule(expr, expected):
    days = [t[:10] for t in upcoming(expr, START, len(expected))]
    assert days == expected


def test_day_or_against_croniter_where_both_agree():
    """Where croniter and robfig agree (no `*/1`, no `?` outside dom/dow), the port agrees too."""
    exprs = [
        "0 0 9 13 * FRI", "0 0 9 * * FRI", "0 0 9 1-31 * FRI", "0 0 9 */2 * FRI",
        "0 0 9 13 * 0-6", "0 0 9 1,15 * MON-FRI", "0 15 10 1/2 * MON", "0 0 */3 * * *",
        "0 7,37 8-17 * * 1-5", "0 0 0 L * *".replace("L", "28-31"), "30 */2 * * SAT,SUN",
    ]
    for expr in exprs:
        parsed = spec(expr)
        it = croniter(expr, START, ret_type=datetime, second_at_beginning=True)
        t = START
        for _ in range(40):
            t = next_fire(parsed, t, UTC)
            assert t == it.get_next(), expr


# --- DST in America/New_York (spring 2026-03-08, fall 2026-11-01) --------------------------------


@pytest.mark.parametrize(
    "expr, start, expected",
    [
        # spring forward: hourly skips the missing 02:00
        ("0 0 * * * *", local(2026, 3, 8, 0, 0),
         ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00", "2026-03-08T05:00:00-04:00"]),
        # a time inside the gap is skipped for that day (croniter moves it to 03:00)
        ("0 30 2 * * *", local(2026, 3, 7, 12, 0),
         ["2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00", "2026-03-11T02:30:00-04:00"]),
        ("0 0 2 * * *", local(2026, 3, 7, 12, 0),
         ["2026-03-09T02:00:00-04:00", "2026-03-10T02:00:00-04:00", "2026-03-11T02:00:00-04:00"]),
        ("30 2 * * *", local(2026, 3, 7, 12, 0),
         ["2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"]),
        ("0 0 1 * * *", local(2026, 3, 7, 12, 0),
         ["2026-03-08T01:00:00-05:00", "2026-03-09T01:00:00-04:00"]),
        ("0 0 3 * * *", local(2026, 3, 7, 12, 0),
         ["2026-03-08T03:00:00-04:00", "2026-03-09T03:00:00-04:00"]),
        ("0 */30 * * * *", local(2026, 3, 8, 1, 0),
         ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00", "2026-03-08T04:00:00-04:00"]),
        # fall back: the repeated hour fires twice
        ("0 0 * * * *", local(2026, 11, 1, 0, 0),
         ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"]),
        ("0 30 1 * * *", local(2026, 11, 1, 0, 0),
         ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"]),
        ("0 0 2 * * *", local(2026, 11, 1, 0, 0),
         ["2026-11-01T02:00:00-05:00", "2026-11-02T02:00:00-05:00", "2026-11-03T02:00:00-05:00"]),
        ("0 */30 * * * *", local(2026, 11, 1, 0, 30),
         ["2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"]),
    ],
)
def test_dst_new_york(expr, start, expected):
    assert upcoming(expr, start, len(expected), tz=NY) == expected


def test_midnight_that_does_not_exist():
    """Havana skipped midnight on 2019-03-10 (a Sunday). robfig steps hours in absolute time, so
    a midnight schedule has no run that day; its day search moves a missing midnight to the
    day's first hour, where a 01:00 schedule still runs."""
    havana = ZoneInfo("America/Havana")
    start = datetime(2019, 3, 8, 12, tzinfo=havana)
    assert upcoming("0 0 0 * * *", start, 3, tz=havana) == [
        "2019-03-09T00:00:00-05:00", "2019-03-11T00:00:00-04:00", "2019-03-12T00:00:00-04:00",
    ]
    assert upcoming("0 0 0 * * SUN", start, 1, tz=havana) == ["2019-03-17T00:00:00-04:00"]
    assert upcoming("0 0 1 * * SUN", start, 1, tz=havana) == ["2019-03-10T01:00:00-04:00"]


# --- rules of the search ---------------------------------------------------------------------------


def test_strictly_after_and_whole_seconds():
    hourly = spec("0 0 * * * *")
    on_the_hour = datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert next_fire(hourly, on_the_hour, UTC) == datetime(2026, 1, 1, 6, tzinfo=UTC)
    assert next_fire(hourly, on_the_hour - timedelta(microseconds=1), UTC) == on_the_hour
    every_second = spec("* * * * * *")
    assert next_fire(every_second, datetime(2026, 1, 1, 0, 0, 0, 999999, tzinfo=UTC), UTC) == datetime(
        2026, 1, 1, 0, 0, 1, tzinfo=UTC
    )


def test_never_fires_within_five_years():
    feb_30 = with_values("0 0 1 2 *", day_of_month=(30,))  # `0 0 30 2 *`, which the linter rejects
    assert next_fire(feb_30, START, UTC) is None
    assert list(fire_times(feb_30, START, START + timedelta(days=3650), UTC)) == []
    # Feb 29 on a Monday: 2044 is more than five years ahead, so robfig gives up
    leap_monday = with_values("0 0 29 2 1", day_of_month=(29,), day_of_week=(1,))
    and_rule = leap_monday.model_copy(
        update={"fields": leap_monday.fields[:3] + (leap_monday.fields[3].model_copy(update={"star": True}),)
                + leap_monday.fields[4:]}
    )
    assert next_fire(and_rule, START, UTC) is None
    assert next_fire(and_rule, datetime(2040, 1, 1, tzinfo=UTC), UTC) == datetime(2044, 2, 29, tzinfo=UTC)


def test_timezone_prefix_wins_over_the_scheduler_zone():
    tokyo = spec("TZ=Asia/Tokyo 0 0 9 * * *")
    got = next_fire(tokyo, START, NY)  # START is 09:00 in Tokyo: strictly after it
    assert got.isoformat() == "2026-01-02T09:00:00+09:00"
    assert got.utcoffset() == timedelta(hours=9)
    cron_tz = spec("CRON_TZ=America/New_York 0 0 9 * * *")
    assert next_fire(cron_tz, START, UTC).isoformat() == "2026-01-01T09:00:00-05:00"
    # without a prefix the tz argument decides
    assert next_fire(spec("0 0 9 * * *"), START, NY).isoformat() == "2026-01-01T09:00:00-05:00"


# --- @every ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, after, expected",
    [
        ("@every 1h30m", datetime(2026, 1, 1, 0, 7, 3, tzinfo=UTC), datetime(2026, 1, 1, 1, 37, 3, tzinfo=UTC)),
        ("@every 90s", datetime(2026, 1, 1, 0, 7, 3, tzinfo=UTC), datetime(2026, 1, 1, 0, 8, 33, tzinfo=UTC)),
        # truncated to whole seconds, not aligned to the clock
        ("@every 1h", datetime(2026, 1, 1, 0, 7, 3, 750000, tzinfo=UTC), datetime(2026, 1, 1, 1, 7, 3, tzinfo=UTC)),
        ("@every 1.5s", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)),
        # under a second: one second
        ("@every 100ms", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)),
    ],
)
def test_every(expr, after, expected):
    assert next_fire(spec(expr), after, UTC) == expected


def test_every_is_absolute_time_across_dst():
    got = next_fire(spec("@every 1h"), local(2026, 3, 8, 1, 30), NY)
    assert got.isoformat() == "2026-03-08T03:30:00-04:00"


def test_every_has_no_fixed_fire_times():
    with pytest.raises(ValueError):
        fires_at(spec("@every 1h"), START, UTC)
    chained = list(fire_times(spec("@every 1h"), START, START + timedelta(hours=3), UTC))
    assert [t.hour for t in chained] == [1, 2, 3]


# --- fires_at / fire_times -------------------------------------------------------------------------


def test_fires_at():
    daily = spec("0 30 2 * * *")
    assert fires_at(daily, datetime(2026, 1, 5, 2, 30, tzinfo=UTC), UTC)
    assert not fires_at(daily, datetime(2026, 1, 5, 2, 30, 1, tzinfo=UTC), UTC)
    assert not fires_at(daily, datetime(2026, 1, 5, 2, 30, 0, 1, tzinfo=UTC), UTC)
    # both 01:30s of the fall-back night
    half_past_one = spec("0 30 1 * * *")
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert fires_at(half_past_one, first, NY)
    assert fires_at(half_past_one, first + timedelta(hours=1), NY)
    # an instant given in another zone
    assert fires_at(spec("0 0 9 * * *"), datetime(2026, 1, 5, 14, tzinfo=UTC), NY)


def test_fire_times_is_half_open_on_the_left():
    hourly = spec("0 0 * * * *")
    got = list(fire_times(hourly, START, START + timedelta(hours=3), UTC))
    assert got == [START + timedelta(hours=h) for h in (1, 2, 3)]
    assert list(fire_times(hourly, START, START, UTC)) == []


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        next_fire(spec("@daily"), datetime(2026, 1, 1), UTC)


# --- Go's time.Date, which the search (and batch steps) are built on ------------------------------


@pytest.mark.parametrize(
    "zone, fields, expected",
    [
        # golang/go#24551, #50223, #35508, #26224: west of UTC a skipped time moves back, east of
        # UTC forward; a repeated time takes the offset Go finds first
        ("America/Vancouver", (2018, 3, 11, 2, 0), "2018-03-11T01:00:00-08:00"),
        ("America/New_York", (2026, 3, 8, 2, 30), "2026-03-08T01:30:00-05:00"),
        ("Europe/Paris", (2021, 3, 28, 2, 0), "2021-03-28T03:00:00+02:00"),
        ("America/Santiago", (2021, 9, 5, 0, 0), "2021-09-04T23:00:00-04:00"),
        ("America/Havana", (2019, 3, 10, 0, 0), "2019-03-09T23:00:00-05:00"),
        ("Australia/Melbourne", (2018, 4, 1, 2, 0), "2018-04-01T02:00:00+10:00"),
        ("Australia/Melbourne", (2018, 4, 1, 1, 59), "2018-04-01T01:59:00+11:00"),
        ("America/New_York", (2026, 11, 1, 1, 30), "2026-11-01T01:30:00-04:00"),
        ("Europe/London", (2026, 10, 25, 1, 30), "2026-10-25T01:30:00+00:00"),
        # normalisation of overflowing fields
        ("UTC", (2020, 1, 31 + 29 + 2, 0, 0), "2020-03-02T00:00:00+00:00"),
        ("UTC", (2020, 13, 1, 24, 0), "2021-01-02T00:00:00+00:00"),
        ("UTC", (2020, 3, 0, 0, 0), "2020-02-29T00:00:00+00:00"),
    ],
)
def test_go_date(zone, fields, expected):
    year, month, day, hour, minute = fields
    assert go_date(year, month, day, hour, minute, 0, ZoneInfo(zone)).isoformat() == expected


def test_go_add_date_month_drift():
    jan31 = datetime(2020, 1, 31, tzinfo=UTC)
    assert go_add_date(jan31, months=1) == datetime(2020, 3, 2, tzinfo=UTC)
    assert go_add_date(datetime(2021, 1, 31, tzinfo=UTC), months=1) == datetime(2021, 3, 3, tzinfo=UTC)
