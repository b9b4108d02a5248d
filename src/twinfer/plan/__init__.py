"""Fleet planning and scenario sweeps.

- :mod:`twinfer.plan.grid`: sweep files (base scenario + grid/cases) expanded to jobs with stable ids.
- :mod:`twinfer.plan.sweep`: run jobs on local processes or Ray, streaming rows to the store; resume.
- :mod:`twinfer.plan.store`: Parquet part files written atomically, queried with DuckDB.
- :mod:`twinfer.plan.runner`: the bridge from a scenario mapping to the fleet simulator.
- :mod:`twinfer.plan.planner`: search fleets for a model, workload and SLOs (prune, simulate, Pareto).

Nothing here imports pyarrow, duckdb or ray at module import time.
"""
