# A Python workflow module is imported (run) to collect its Workflow. This one stops with a
# NameError on the second phase: TEMPLATE is used before the line that defines it.
from flowlord import Workflow

wf = Workflow()
wf.phase(task="extract_orders", cron="0 5 * * *", offset="-24h", retry=2, template="?day={yyyy}-{mm}-{dd}")
wf.phase(task="load_orders", depends_on="extract_orders", template=TEMPLATE)

TEMPLATE = "?day={yyyy}-{mm}-{dd}&table=orders"
