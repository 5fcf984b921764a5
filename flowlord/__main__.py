from flowlord.cli import run

run()
