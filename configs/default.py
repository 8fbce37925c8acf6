"""The base config: every knob bnlab has, with the defaults of one plain run.

Every other config imports this one and changes a few fields. Run it alone with

    python launch.py --config=configs/default.py

to train one MLP with batch norm on the offline `digits` dataset (~0.97 validation accuracy).
"""

import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  # One integer seeds the sampling of settings, the shared init and the data order.
  config.seed = 0

  config.dataset = ml_collections.ConfigDict()
  # `digits` (offline), `fashion_mnist`, `mnist`, `cifar10` or any TFDS image-classification name;
  # `npz:PATH` for your own arrays (x_train, y_train, x_test, y_test[, x_val, y_val]).
  config.dataset.name = 'digits'
  config.dataset.data_dir = ''  # TFDS data dir; '' means TFDS's default (~/tensorflow_datasets).
  config.dataset.manual_dir = ''  # Local raw files for offline builds ('' = the usual places).
  config.dataset.val_fraction = 0.2  # Share of the train split held out for model selection.
  # Input scaling, fitted on the training split only (after the val carve-out): standardize (zero
  # mean, unit variance per channel) | minmax ([0, 1]) | minmax_symmetric ([-1, 1]) | none (raw).
  config.dataset.scaling = 'standardize'

  config.model = ml_collections.ConfigDict()
  # mlp | cnn | resnet | densenet, or PACKAGE.MODULE:ATTR: a flax.linen.Module of your own (README).
  config.model.name = 'mlp'
  # Hidden sizes (MLP) or channels (CNN; ResNet/DenseNet: entering each stage).
  config.model.widths = (128, 128, 128)
  config.model.norm = 'batch'  # batch | batch_scratch | layer | group | instance | none
  config.model.activation = 'relu'  # relu | sigmoid | tanh
  config.model.groups = 8  # Groups of `group` norm; must divide every width.
  config.model.depth = 2  # Residual blocks (ResNet) or dense layers (DenseNet) per stage.
  config.model.growth_rate = 12  # Channels each DenseNet layer adds; groups must divide it.
  config.model.bn_momentum = 0.9  # Running-average decay: avg <- m * avg + (1 - m) * batch.
  config.model.bn_epsilon = 1e-5
  config.model.bn_eval = 'running'  # running | batch | precise: statistics used at test time.
  config.model.init_scale = 1.0  # Variance scale of the fan-in normal init (2.0 = He).
  # Keyword arguments of a PACKAGE.MODULE:ATTR model's constructor. A config file adds keys
  # (config.model.kwargs.hidden = 32); the command line can override them, not add new ones.
  config.model.kwargs = ml_collections.ConfigDict()

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'  # sgd | momentum | rmsprop | adam | adamw
  config.optimizer.learning_rate = 1e-3
  config.optimizer.b1 = 0.9  # Adam first-moment decay.
  config.optimizer.b2 = 0.999  # Adam second-moment decay.
  config.optimizer.eps = 1e-8
  config.optimizer.momentum = 0.9  # For `momentum` (heavy ball).
  config.optimizer.decay = 0.9  # RMSprop's squared-gradient decay.
  config.optimizer.weight_decay = 0.0  # Decoupled for adamw, an L2 term for the others.
  config.optimizer.clip_norm = 0.0  # Clip by global norm; 0 means off.
  config.optimizer.schedule = 'constant'  # constant | cosine | warmup_cosine

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 64
  config.train.epochs = 10
  # Early stopping: a trial whose sweep.metric has not improved for this many epochs stops
  # (status `stopped`; its slot goes to the next trial); 0 = off. Lists of trials, as sweep.pruner.
  config.train.patience = 0
  # Checkpoint the sweep every this many epochs; 0 = never. A chunk's last epoch is not saved:
  # its results go to the journal instead (halving and pbt save theirs: 0 = the last epoch only).
  # A killed run resumes from its last checkpoint when the same command runs again.
  # One Orbax save of configs/sweep.py's 64-member chunk costs about half an epoch on 2 CPU cores.
  config.train.checkpoint_every = 5
  # A finished chunk's mid-run checkpoints are removed once its results are journaled (they were
  # 97% of a sweep's workdir); True keeps them. Halving's, PBT's and Hyperband's stay either way:
  # a rebuild of their results reads them.
  config.train.keep_checkpoints = False

  config.sweep = ml_collections.ConfigDict()
  # grid | random | quasirandom | coarse_to_fine | halving | pbt | tpe | hyperband | gp
  config.sweep.strategy = 'random'
  config.sweep.num_trials = 1
  config.sweep.metric = 'val_accuracy'  # val_accuracy | val_loss | train_loss
  config.sweep.mode = 'max'  # max | min
  # Which epoch's validation metrics rank a trial: last | best (its best epoch by sweep.metric;
  # best_config.py then trains to that epoch). results.csv has best_epoch either way.
  config.sweep.select = 'last'
  # Two or more objectives, e.g. 'val_accuracy:max, param_count:min' (the first is sweep.metric:
  # sweep.mode; others: val_loss, train_loss, param_count, flops_per_example, seconds_per_epoch).
  # grid, random, quasirandom and tpe then rank by the Pareto front (pareto.csv, pareto/); '' = one.
  config.sweep.objectives = ''
  config.sweep.max_parallel = 256  # Members per compiled program at most; more run in chunks.
  config.sweep.seeds = 1  # Init/data seeds per setting, side by side; results give mean and spread.
  # Lists of trials (grid, random, quasirandom, coarse_to_fine, tpe, gp) may stop a trial early:
  # none | median | percentile (below the top sweep.pruner_percentile % of the other trials at the
  # same epoch), from its sweep.pruner_warmup-th epoch on; its slot goes to the next trial.
  config.sweep.pruner = 'none'
  config.sweep.pruner_warmup = 1
  config.sweep.pruner_percentile = 50.0
  # tpe and gp: batch (ask batch_size trials, learn when all have stopped) | slot (ask one trial
  # whenever a slot frees, at every epoch boundary: with a pruner, the sampler learns per epoch).
  config.sweep.ask = 'batch'

  # Each strategy's own knobs, in its own section (bnlab/strategies/<name>.py checks them).
  config.sweep.coarse_to_fine = ml_collections.ConfigDict()
  config.sweep.coarse_to_fine.rounds = 3  # Rounds, each in the box of the previous round's best.
  config.sweep.coarse_to_fine.top_fraction = 0.25  # The best share of a round spans the next box.
  config.sweep.halving = ml_collections.ConfigDict()
  config.sweep.halving.eta = 3  # The best 1/eta of the trials go on to the next rung.
  config.sweep.halving.min_epochs = 1  # Epochs of the first rung; each next rung eta times more.
  config.sweep.pbt = ml_collections.ConfigDict()
  config.sweep.pbt.interval = 2  # Epochs between two exploit/explore steps.
  config.sweep.pbt.quantile = 0.25  # The bottom quantile copies the top quantile.
  config.sweep.pbt.resample = 0.25  # Chance to redraw a hyperparameter instead of x0.8 / x1.2.
  config.sweep.tpe = ml_collections.ConfigDict()
  config.sweep.tpe.batch_size = 8  # Trials asked at once and trained together in one program.
  config.sweep.gp = ml_collections.ConfigDict()
  config.sweep.gp.batch_size = 8  # Trials asked at once (qLogEI keeps them apart), one program.
  config.sweep.hyperband = ml_collections.ConfigDict()
  config.sweep.hyperband.eta = 3  # Each bracket keeps the best 1/eta at every rung.
  # Epochs of the shortest rung; train.epochs (the paper's R) is the longest, and a multiple.
  config.sweep.hyperband.min_epochs = 1
  # Mirrors the tree above; a non-empty spec string sweeps that field, '' leaves it fixed.
  config.sweep.space = empty_space(config)
  return config


def empty_space(config):
  """A `sweep.space` with one '' entry for every sweepable field of `config`."""
  space = ml_collections.ConfigDict()
  for section in ('model', 'optimizer', 'train'):
    space[section] = ml_collections.ConfigDict(  # Fields, not sections (model.kwargs).
        {field: '' for field, value in config[section].items() if not hasattr(value, 'items')})
  return space
