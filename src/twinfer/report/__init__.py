"""Everything twinfer writes for people to look at: HTML reports, traces, tables.

All file output of the project lives in this package and in the CLI, never in
library constructors. The HTML report (``twinfer report``) is built by the
``html*`` and ``charts*`` modules; import them directly (they pull in pyarrow
and plotly, which ``import twinfer`` must not).
"""
