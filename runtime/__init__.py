"""The runtime: executes a compiled plan (scheduler, dispatcher, store, bus)."""
