"""flowlord: a workflow orchestrator built around a compiler."""

__version__ = "0.1.0"

__all__ = ["Phase", "Workflow", "__version__"]


def __getattr__(name: str):
    # The Python DSL (`from flowlord import Workflow`) loads the compiler: only on first use,
    # so that `import flowlord` (and the CLI's start-up) stays cheap.
    if name in ("Workflow", "Phase"):
        from flowlord.compiler import dsl

        return getattr(dsl, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
