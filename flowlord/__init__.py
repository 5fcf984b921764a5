"""flowlord: a workflow orchestrator built around a compiler."""

__version__ = "0.1.0"
