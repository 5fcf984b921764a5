"""Clickstream pipeline, declared in Python.

`flowlord lint dsl_examples/python_pipeline.py` imports (runs) this module and checks the
`Workflow` it defines exactly as it checks a TOML file, with diagnostics on these lines;
`flowlord export dsl_examples/python_pipeline.py -o clicks.toml` writes the equivalent TOML,
which is what the Go flowlord reads.
"""

from flowlord import Workflow

HOUR = "?hour={yyyy}-{mm}-{dd}T{hh}"

wf = Workflow()

# Hourly ETL. At ten past every hour, extract the hour that ended four hours ago (late events
# have settled by then); transform and load follow, each with the time of its parent.
wf.phase(
    task="clicks:extract",
    cron="0 10 * * * *",  # six fields, seconds first
    offset="-4h",
    retry=3,
    retry_delay="30s",
    template="gs://acme-raw/clicks/{HOUR_SLUG}/" + HOUR,
)
wf.phase(
    task="clicks:transform",
    depends_on="clicks:extract",
    retry=2,
    retry_delay="1m",
    template=HOUR + "&dest=gs://acme-stage/clicks/{HOUR_SLUG}/",
)
wf.phase(
    task="clicks:load",
    depends_on="clicks:transform",
    retry=5,
    retry_delay="2m",
    template=HOUR + "&table=analytics.clicks",
)

# Every morning, roll up the three days before today again (yesterday, the day before, and
# the one before that): one task per day, as late partner data may still change them.
wf.phase(
    task="clicks:rollup",
    cron="0 30 6 * * *",
    offset="-24h",
    for_="-48h",
    by="day",
    retry=2,
    template="?day={yyyy}-{mm}-{dd}&table=analytics.clicks_daily",
)

# A daily report per region: `meta` fans the phase out into one task per value.
wf.phase(
    task="clicks:report",
    cron="0 0 8 * * *",
    offset="-24h",
    meta={"region": ["us", "eu", "apac"]},
    template="?day={yyyy}-{mm}-{dd}&region={meta:region}",
)

# File-triggered: each partner file written under gs://acme-inbound/partner/YYYY/MM/DD/ starts
# an import, with the day read from the path and the file as {meta:file}; the merge runs
# after it, only when the parent really had a file.
wf.phase(
    task="partner_feed:import",
    files="gs://acme-inbound/partner/*/*/*/*.csv.gz",
    retry=2,
    retry_delay="5m",
    template="{meta:file}?day={yyyy}-{mm}-{dd}",
)
wf.phase(
    task="partner_feed:merge",
    depends_on="partner_feed:import",
    require="{meta:file}",
    template="{meta:file}?into=analytics.clicks&day={yyyy}-{mm}-{dd}",
)
