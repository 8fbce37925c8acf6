"""Search strategies, one module each behind one protocol (base.Strategy), registered here.

The population loop trains whatever a strategy gives it and never learns which one drives it.
Adding a strategy touches its module, its entry below, its section of configs/default.py
(sweep.<name>.*), its name and its section's bounds in bnlab/prechecks.py (checked before JAX is
imported; tests/test_terminal.py ties the names to this registry) and the docs: nothing else.
"""

from bnlab.strategies import coarse_to_fine
from bnlab.strategies import gp
from bnlab.strategies import grid
from bnlab.strategies import halving
from bnlab.strategies import hyperband
from bnlab.strategies import pbt
from bnlab.strategies import quasirandom
from bnlab.strategies import random_search
from bnlab.strategies import tpe

STRATEGIES = {
    'grid': grid,
    'random': random_search,
    'quasirandom': quasirandom,
    'coarse_to_fine': coarse_to_fine,
    'halving': halving,
    'pbt': pbt,
    'tpe': tpe,
    'hyperband': hyperband,
    'gp': gp,
}
# Strategies that search: they refuse an empty space (grid and random train it as it is).
SEARCHING = tuple(name for name, strategy in STRATEGIES.items() if strategy.SEARCHES)
# Strategies that rank by sweep.objectives' Pareto front (tpe with Optuna's multi-objective
# TPE). The others keep, cut or copy trials by one metric, which would discard the front.
PARETO = ('grid', 'random', 'quasirandom', 'tpe')
