"""Pure validation logic: no I/O, no clocks, no subprocesses.

`tensors` is also imported by the sandbox runner, so it depends on numpy only.
"""
