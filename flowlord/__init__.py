"""flowlord: a workflow orchestrator built around a compiler."""

__version__ = "0.1.0"

__all__ = ["Phase", "Workflow", "Worker", "__version__", "task_handler"]


def __getattr__(name: str):
    # The Python DSL (`from flowlord import Workflow`) loads the compiler: only on first use,
    # so that `import flowlord` (and the CLI's start-up) stays cheap.
    if name in ("Workflow", "Phase"):
        from flowlord.compiler import dsl

        return getattr(dsl, name)
    if name in ("Worker", "task_handler"):  # workers in Python: flowlord.worker
        from flowlord import worker

        return getattr(worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
