"""Periodic jobs: parsing and validation, ticks across DST, exactly one enqueue per tick
across worker processes, the missed-tick policy, and pause, resume and trigger."""

from __future__ import annotations

import itertools
import textwrap
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from steep import configure, job, ops
from steep.connection import get_keys
from steep.features import cron
from steep.settings import ConfigError, Settings, load_settings
from tests import cron_jobs
from tests.conftest import holds_for, wait_for

BERLIN = ZoneInfo("Europe/Berlin")
EVERY_SECOND = "* * * * * *"


def entry(name: str, tag: str, schedule: str = EVERY_SECOND, **more: object) -> dict:
    spec = {"job": "tests.cron_jobs.record_tick", "schedule": schedule, "args": [tag]}
    return {name: {**spec, **more}}


def state_key(name: str, queue: str = "default") -> str:
    return get_keys().queue(queue).cron(name)


# -- parsing and validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"schedule": "61 * * * *"}, "'cron.nightly.schedule' must be a cron expression"),
        ({"schedule": "* * *"}, "Wrong number of fields"),
        ({"timezone": "Europe/Berln"}, "did you mean 'Europe/Berlin'?"),
        ({"shedule": "* * * * *"}, "'cron.nightly.shedule' must be one of job, schedule"),
        ({"missed": "twice"}, "'cron.nightly.missed' must be 'once' or 'skip', got 'twice'"),
        ({"grace": 0}, "'cron.nightly.grace' must be a number of seconds > 0"),
        ({"args": "7"}, "'cron.nightly.args' must be an array"),
    ],
)
def test_bad_entries_in_steep_toml_name_the_entry_and_line(tmp_path: Path, spec, message):
    good = {"job": "app.jobs.report", "schedule": "0 3 * * *"}
    lines = [f"{k} = {v!r}".replace("'", '"') for k, v in {**good, **spec}.items()]
    (tmp_path / "steep.toml").write_text(
        'namespace = "shop"\n\n[cron.nightly]\n' + "\n".join(lines) + "\n"
    )
    with pytest.raises(ConfigError) as err:
        load_settings(cwd=tmp_path, environ={})
    text = str(err.value)
    assert message in text, text
    bad_key = next(iter(spec))
    line = 4 + list({**good, **spec}).index(bad_key)
    assert text.startswith(f"steep.toml:{line}: "), text


def test_a_good_cron_table_becomes_entries(tmp_path: Path):
    (tmp_path / "steep.toml").write_text(
        textwrap.dedent(
            """\
            [cron.nightly_report]
            job = "app.jobs.nightly_report"
            schedule = "@daily"
            timezone = "Europe/Berlin"
            args = [7]
            kwargs = { format = "pdf" }
            missed = "skip"
            grace = 300

            [cron.cleanup]
            job = "app.jobs.cleanup"
            schedule = "*/5 * * * *"
            queue = "low"
            """
        )
    )
    settings = load_settings(cwd=tmp_path, environ={})
    nightly, cleanup = settings.cron
    assert (nightly.name, nightly.schedule, nightly.timezone) == (
        "nightly_report",
        "0 0 * * *",
        "Europe/Berlin",
    )
    assert (nightly.args, dict(nightly.kwargs), nightly.missed, nightly.grace) == (
        (7,),
        {"format": "pdf"},
        "skip",
        300.0,
    )
    assert (cleanup.queue, cleanup.missed, cleanup.grace) == ("low", "once", cron.DEFAULT_GRACE)
    assert configure(settings, concurrency=3).cron == settings.cron  # checked entries stay


def test_missing_job_and_unencodable_args_are_refused():
    with pytest.raises(ConfigError, match=r"'cron\.x' must be a table with 'job'"):
        Settings(cron={"x": {"schedule": "* * * * *"}})
    with pytest.raises(ConfigError, match=r"'cron\.x\.args' must be JSON-encodable"):
        Settings(cron={"x": {"job": "a.b", "schedule": "* * * * *", "args": [object()]}})


def test_the_decorator_checks_its_schedule_and_registers_the_entry():
    with pytest.raises(ValueError, match=r"@job .*bad_schedule: cron must be a cron expression"):

        @job(cron="0 25 * * *")
        def bad_schedule() -> None: ...

    with pytest.raises(ValueError, match=r"timezone must be an IANA time zone"):

        @job(cron="0 3 * * *", timezone="Mars/Olympus")
        def bad_zone() -> None: ...

    with pytest.raises(TypeError, match="only go with cron="):

        @job(timezone="Europe/Berlin")
        def zone_without_cron() -> None: ...

    @job(cron="0 3 * * *", timezone="Europe/Berlin", missed="skip", cron_args=(7,))
    def nightly(days: int) -> None: ...

    try:
        known = {e.name: e for e in cron.entries(Settings())}
        found = known[nightly.name]
        assert (found.schedule, found.timezone, found.missed, found.args, found.source) == (
            "0 3 * * *",
            "Europe/Berlin",
            "skip",
            (7,),
            "decorator",
        )
        clash = Settings(cron={nightly.name: {"job": "a.b", "schedule": "* * * * *"}})
        with pytest.raises(ConfigError, match="has the name of a job decorated"):
            cron.entries(clash)
    finally:
        cron.unregister(nightly.name)


# -- ticks across DST (pure) -------------------------------------------------------------


def berlin(*parts: int) -> float:
    return datetime(*parts, tzinfo=BERLIN).timestamp()  # type: ignore[misc]


def test_a_daily_tick_in_a_zone_across_both_dst_changes():
    # spring forward: 02:30 does not exist on 2024-03-31, so the run moves to 03:00 CEST
    spring = cron.next_tick("30 2 * * *", "Europe/Berlin", berlin(2024, 3, 30, 12))
    assert datetime.fromtimestamp(spring, BERLIN).isoformat() == "2024-03-31T03:00:00+02:00"
    # fall back: 02:30 happens twice on 2024-10-27, and runs once (the first time)
    ticks = cron.ticks_between(
        "30 2 * * *", "Europe/Berlin", berlin(2024, 10, 26, 12), berlin(2024, 10, 28, 12)
    )
    shown = [datetime.fromtimestamp(t, BERLIN).isoformat() for t in ticks]
    assert shown == ["2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"]
    assert ticks[1] - ticks[0] == 25 * 3600  # the wall clock repeats an hour
    # an hourly entry runs every real hour through the repeated one
    hourly = cron.ticks_between(
        "0 * * * *", "Europe/Berlin", berlin(2024, 10, 27, 0, 30), berlin(2024, 10, 27, 3, 30)
    )
    assert [b - a for a, b in itertools.pairwise(hourly)] == [3600] * 3
    assert cron.prev_tick("30 2 * * *", "Europe/Berlin", berlin(2024, 3, 31, 12)) == spring


def test_six_fields_tick_in_seconds_and_tick_ids_are_stable():
    start = berlin(2025, 1, 1, 12)
    assert cron.ticks_between("*/15 * * * * *", "UTC", start, start + 60) == [
        start + 15,
        start + 30,
        start + 45,
        start + 60,
    ]
    a = cron.tick_job_id("nightly", start)
    assert a == cron.tick_job_id("nightly", start) != cron.tick_job_id("other", start)
    assert len(a) == 26 and a < cron.tick_job_id("nightly", start + 1)


# -- workers ---------------------------------------------------------------------------


def test_each_tick_is_enqueued_exactly_once_by_many_worker_processes(worker_cli):
    """Two supervisors with two processes each tick the same every-second entry; every
    tick runs once (the job id is derived from the tick, and runs are counted per id)."""
    workers = [worker_cli("worker", "tests.cron_decorated", "-p", "2", "-c", "4") for _ in "ab"]
    wait_for(
        lambda: len(cron_jobs.runs("every-second")) >= 6,
        timeout=30,
        message="six ticks of the every-second entry",
    )
    for w in workers:
        w.signal(2)
    for w in workers:
        assert w.wait() == 0, w.text
    runs = cron_jobs.runs("every-second")
    ids = [r["id"] for r in runs]
    ticks = [r["tick"] for r in runs]
    assert len(ids) == len(set(ids)), f"a tick ran twice: {ids}"
    assert len(ticks) == len(set(ticks))
    stamps = sorted(datetime.fromisoformat(t).timestamp() for t in ticks)
    assert stamps == [stamps[0] + i for i in range(len(stamps))], "a tick was skipped"
    assert all(t.endswith(("+01:00", "+02:00")) for t in ticks)  # the entry's time zone
    for r in runs:
        tick = datetime.fromisoformat(r["tick"]).timestamp()
        assert r["id"] == cron.tick_job_id("tests.cron_decorated.every_second", tick)
    listed = {e.name: e for e in ops.cron_entries()}["tests.cron_decorated.every_second"]
    assert (listed.source, listed.timezone) == ("decorator", "Europe/Berlin")
    assert listed.last_job_id in ids


def test_a_settings_entry_runs_its_job_with_its_arguments(client, run_worker):
    configure(cron=entry("tick", "plain", kwargs={"extra": 5}))
    run_worker(burst=False)
    first = wait_for(lambda: cron_jobs.runs("plain"), message="a tick")[0]
    assert first["extra"] == 5 and first["trigger"] is None
    info = ops.cron_entry("tick")
    assert info.source == "steep.toml" and info.args == ["plain"]
    assert info.last_tick is not None and info.next_run is not None
    assert info.next_run > info.last_tick
    assert not info.paused and not info.stale


@pytest.mark.parametrize("policy", ["once", "skip"])
def test_ticks_missed_while_no_worker_ran(client, run_worker, policy):
    """A daily entry whose last handled tick is days old: `once` runs one catch-up,
    `skip` runs nothing; a brand-new entry never catches up on a tick before it existed."""
    # daily at the full hour two hours back: its newest tick is always 2-3 h old, far
    # beyond `grace` (1 s)
    daily = f"0 {(datetime.now(ZoneInfo('UTC')).hour - 2) % 24} * * *"
    configure(
        cron={
            **entry("daily", policy, daily, missed=policy, grace=1),
            **entry("fresh", f"fresh-{policy}", daily, missed=policy, grace=1),
        }
    )
    days_ago = int((time.time() - 3 * 86400) * 1000)
    client.hset(state_key("daily"), "last", days_ago)
    latest = cron.prev_tick(daily, "UTC", time.time())
    assert latest is not None and time.time() - latest > 7200
    run_worker(burst=False)
    wait_for(
        lambda: int(client.hget(state_key("daily"), "last") or 0) > days_ago,
        message="the worker to handle the missed ticks",
    )
    if policy == "once":
        run = wait_for(lambda: cron_jobs.runs("once"), message="the catch-up run")[0]
        assert datetime.fromisoformat(run["tick"]).timestamp() == latest
    # nothing more may happen: 1 s is five schedule polls
    expected = 1 if policy == "once" else 0
    holds_for(lambda: len(cron_jobs.runs(policy)) == expected, 1.0, message="no further run")
    assert cron_jobs.runs(f"fresh-{policy}") == []
    assert int(client.hget(state_key("daily"), "last")) == latest * 1000
    assert int(client.hget(state_key("fresh"), "last")) == latest * 1000


def test_pause_resume_and_trigger_through_ops(client, run_worker):
    configure(cron=entry("beat", "beat"))
    run_worker(burst=False)
    wait_for(lambda: cron_jobs.runs("beat"), message="a first tick")
    ops.pause_cron("beat")
    assert ops.cron_entry("beat").paused and ops.cron_entry("beat").next_run is None
    # a tick enqueued before the pause landed may still run: wait until no job of the
    # queue is waiting or running (every later tick sees the pause)
    jobs_key = get_keys().queue("default").jobs
    wait_for(lambda: client.hlen(jobs_key) == 0, message="the tick in flight to finish")
    before = len(cron_jobs.runs("beat"))
    # must NOT tick while paused: two ticks' worth of time
    holds_for(lambda: len(cron_jobs.runs("beat")) == before, 2.0, message="no tick while paused")

    job_id = ops.trigger_cron("beat")  # a paused entry can still be run by hand
    wait_for(lambda: len(cron_jobs.runs("beat")) == before + 1, message="the triggered run")
    manual = cron_jobs.runs("beat")[-1]
    assert manual["id"] == job_id and manual["trigger"] == "manual" and manual["tick"] is None
    assert ops.cron_entry("beat").last_job_id == job_id

    resumed_at = time.time()
    assert ops.resume_cron("beat") is True
    assert ops.resume_cron("beat") is False
    wait_for(lambda: len(cron_jobs.runs("beat")) >= before + 3, message="ticks after resume")
    after = cron_jobs.runs("beat")[before + 1 :]
    # none of the ticks that fell while paused ran on resume
    assert all(datetime.fromisoformat(r["tick"]).timestamp() > resumed_at - 1 for r in after)
    with pytest.raises(ops.OpsError, match="no cron entry 'nope'"):
        ops.trigger_cron("nope")
