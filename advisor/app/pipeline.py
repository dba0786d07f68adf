"""Wire one run: folder -> scan -> decode cache -> measure -> profile -> decide -> Plan -> strategy -> model.keras and reports.

The public entry points of the application layer, in the order a run uses
them: :func:`advise` (scan, measure, decide; :mod:`advisor.app.advice`),
:func:`write_advice` (``--dry-run``), :func:`execute` (fit, evaluate, export,
report; :mod:`advisor.app.execute`) and :func:`compare`
(:mod:`advisor.app.compare`).
"""

from advisor.app.advice import (
    ADVICE_FILE,
    MODEL_FILE,
    REPORT_FILE,
    SPLIT_FILE,
    Advice,
    advise,
    interrupted_advice,
    write_advice,
)
from advisor.app.compare import compare
from advisor.app.costs import estimate_costs, fit_budget, with_costs
from advisor.app.execute import RunResult, execute

__all__ = ["ADVICE_FILE", "MODEL_FILE", "REPORT_FILE", "SPLIT_FILE", "Advice", "RunResult", "advise",
           "compare", "estimate_costs", "execute", "fit_budget", "interrupted_advice", "with_costs", "write_advice"]
