"""The tutorial's recipe, trained eight at a time: Optuna's TPE with the median pruner, asked one
trial whenever a slot frees.

    python launch.py --config=configs/tpe_slot.py

Eight slots per program shape (configs/sweep.py's space: two MLP shapes, one after the other,
half the trials each). After every epoch the median rule stops trials below the others at the
same epoch, TPE is told each stopped trial's curve and asked for the trial that takes its slot
at the next epoch, in place: the sampler learns per epoch, as the tutorial's one-at-a-time loop
does, while eight trials train in one program (bnlab/strategies/asked.py).
"""

from configs import tpe


def get_config():
  config = tpe.get_config()
  config.sweep.ask = 'slot'
  config.sweep.pruner = 'median'
  config.sweep.tpe.batch_size = 8
  config.sweep.num_trials = 128
  return config
