"""Resume: Orbax checkpoints of the populations in flight and a journal of finished chunks.

Everything lives under `<workdir>/checkpoints/`:

    populations/<name>/<epoch>/   Orbax checkpoint of one Population: the stacked MemberState
                                  (parameters, batch_stats, optimizer states with their per-member
                                  hyperparameters, divergence flags) and JSON metadata (epoch,
                                  history so far, seconds, the caller's own state)
    manifests/<name>/<epoch>.json the SHA-256 of every file of that checkpoint, written after it
    journal/<key>.json            the TrialRecords of a finished chunk of trials, with their SHA-256
    complete.json                 written last: the sweep is done, with the SHA-256 of each
                                  results file it wrote (bnlab.integrity)

Orbax writes a checkpoint into a temporary folder and renames it when finished, and the JSON
files are written to a temporary name and renamed, so a process killed at any moment leaves
either the previous checkpoint or the new one, never half of one. The data order of epoch e
comes from fold_in(seed, e), so (state, epoch) is all the randomness a resume needs.

Nothing is used before it is verified: a checkpoint whose files do not match its manifest (or
that has none) is named in one warning and deleted, and the population goes on from the previous
one (two are kept: a kill between a save and its manifest leaves the older one verified) or from
its start; a journal entry that fails its checksum is named and its chunk trained again. Every
other chunk and checkpoint is kept.
"""

import hashlib
import json
import logging
import os
from typing import Any

from absl import logging as absl_logging
from etils import epath
import jax
import ml_collections
import numpy as np

from bnlab import files
from bnlab import integrity
from bnlab import lazy
from bnlab import parallel
from bnlab import records


def _hashed_tree(config: ml_collections.ConfigDict) -> dict:
  """The config as chunk_key hashes it: without the result-neutral fields, without fields added
  since (records.ADDED_FIELDS) while at their old-behaviour value, and without empty sections
  (model.kwargs by default), so that an upgrade of bnlab keeps a workdir's names."""
  tree = config.to_dict()

  def drop(node, path, only_if=None):
    head, _, rest = path.partition('.')
    if head not in node:
      return
    if rest:
      if isinstance(node[head], dict):
        drop(node[head], rest, only_if)
        if not node[head]:
          del node[head]
    elif only_if is None or node[head] == only_if[0]:
      del node[head]

  for field in records.RESULT_NEUTRAL:
    drop(tree, field)
  for field, old in records.ADDED_FIELDS.items():
    drop(tree, field, (old,))
  if tree.get('model', {}).get('kwargs') == {}:
    del tree['model']['kwargs']
  return tree


def chunk_key(configs: list[ml_collections.ConfigDict], trial_ids: list[int], seed: int) -> str:
  """A stable name for a chunk of trials: its members' configs, trial ids and seed."""
  text = json.dumps([int(seed), [int(t) for t in trial_ids], [_hashed_tree(c) for c in configs]],
                    sort_keys=True, default=repr)
  return hashlib.sha256(text.encode()).hexdigest()[:24]


def _orbax():
  """Orbax, imported by the first save or restore: a sweep that never checkpoints (a short list
  of trials, whose last epochs go to the journal) does not pay its ~0.1 s of import."""
  return lazy.import_module('orbax.checkpoint')


class _QuietOrbax(logging.Filter):
  """Drops Orbax's INFO lines (several per save), which would bury the sweep's own progress."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or '/orbax/' not in record.pathname


_QUIET_ORBAX = _QuietOrbax()


def _history_to_json(history):
  return [{k: np.asarray(v).tolist() for k, v in row.items()} for row in history]


def _history_from_json(rows):
  # The metrics left the device as float32 and bool; JSON keeps their values exactly.
  return [{k: np.asarray(v, bool if k == 'diverged' else np.float32) for k, v in row.items()}
          for row in rows]


class SweepCheckpointer:
  """Saves and restores a sweep's state under `<workdir>/checkpoints`; see the module doc.

  `every` is the cadence in epochs (`train.checkpoint_every`); `due` also says yes at a
  population's last epoch, so 0 checkpoints only that one (halving, pbt). Lists of trials' chunks
  skip their last epoch: their results go to the journal instead (`save_chunk`).
  """

  def __init__(self, workdir, every=1, keep=False):
    # Orbax (tensorstore) wants absolute paths; the default workdir runs/<name> is relative.
    self.root = os.path.join(files.absolute(workdir), 'checkpoints')  # gs:// stays as it is.
    self.every = int(every)
    self.keep = bool(keep)  # train.keep_checkpoints: keep a journaled chunk's checkpoints.
    self._managers = {}
    absl_logging.get_absl_logger().addFilter(_QUIET_ORBAX)  # Adding it twice keeps one.

  chunk_key = staticmethod(chunk_key)

  def due(self, epoch: int, epochs: int) -> bool:
    """Whether a population that just finished `epoch` (1-based) of `epochs` is saved now."""
    return epoch == epochs or (self.every > 0 and epoch % self.every == 0)

  def _manager(self, name):
    if name not in self._managers:
      ocp = _orbax()
      options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True,
                                             enable_async_checkpointing=False)
      # Uncompressed: compression saves few bytes of float weights for much CPU per save
      # (BENCHMARKS.md, engine change 11); checkpoints written compressed still restore.
      self._managers[name] = ocp.CheckpointManager(
          os.path.join(self.root, 'populations', name), options=options,
          item_handlers={'state': ocp.PyTreeCheckpointHandler(use_compression=False),
                         'meta': ocp.JsonCheckpointHandler()})
    return self._managers[name]

  def save_population(self, name: str, state: Any, epoch: int,
                      history: list[dict[str, np.ndarray]], seconds: float | list[float] = 0.0,
                      extra: dict[str, Any] | None = None) -> None:
    """Checkpoints a population's stacked state after `epoch` epochs, with its metadata."""
    meta = {'epoch': int(epoch), 'history': _history_to_json(history), 'seconds': seconds,
            'extra': extra}
    manager = self._manager(name)
    ocp = _orbax()
    manager.save(int(epoch), args=ocp.args.Composite(
        state=ocp.args.PyTreeSave(state), meta=ocp.args.JsonSave(meta)))
    if parallel.is_writer():
      files.write_text(self._manifest_path(name, epoch),
                       json.dumps(integrity.digests(self._step_path(name, epoch))))
      kept = {str(step) for step in manager.all_steps()}
      for path in epath.Path(self.root, 'manifests', name).iterdir():
        if path.stem not in kept:  # Orbax deleted that checkpoint: its manifest goes with it.
          path.unlink()

  def _step_path(self, name, step):
    return os.path.join(self.root, 'populations', name, str(int(step)))

  def _manifest_path(self, name, step):
    return os.path.join(self.root, 'manifests', name, f'{int(step)}.json')

  def _verified_step(self, name, manager):
    """The newest checkpoint of `name` whose files match its manifest; damaged ones are named
    and deleted (bnlab wrote them, and the population trains past them again)."""
    for step in sorted(manager.all_steps(), reverse=True):
      problem = integrity.check_folder(self._step_path(name, step),
                                       self._manifest_path(name, step))
      if not problem:
        return step
      absl_logging.warning('checkpoint %s is damaged (%s): not used; training goes on from the '
                           'one before it, if any, else from its first epoch',
                           self._step_path(name, step), problem)
      if parallel.is_writer():
        manager.delete(step)
    return None

  def restore_population(self, name: str, like: Any
                         ) -> tuple[Any, int, list[dict[str, np.ndarray]], float | list[float],
                                    dict[str, Any] | None] | None:
    """(state, epoch, history, seconds, extra) of the latest checkpoint of `name`, or None.

    `like` is a state of the same shapes (the freshly initialized population) that tells Orbax
    the tree structure, dtypes and shardings to restore into.
    """
    if not files.isdir(os.path.join(self.root, 'populations', name)):
      return None
    manager = self._manager(name)
    step = self._verified_step(name, manager)
    if step is None:
      return None
    ocp = _orbax()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)  # Their shardings.
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(abstract, restore_args), meta=ocp.args.JsonRestore()))
    meta = restored.meta
    return (restored.state, meta['epoch'], _history_from_json(meta['history']),
            meta['seconds'], meta['extra'])

  def restore_meta(self, name: str) -> dict[str, Any] | None:
    """The metadata of the latest sound checkpoint of `name` without its state (epoch, history,
    seconds, and what save_population's caller gave as `extra`), or None: for a caller that must
    know a population's shape before it can restore the state."""
    if not files.isdir(os.path.join(self.root, 'populations', name)):
      return None
    manager = self._manager(name)
    step = self._verified_step(name, manager)
    if step is None:
      return None
    return manager.restore(step, args=_orbax().args.Composite(
        meta=_orbax().args.JsonRestore())).meta

  def _journal_path(self, key):
    return os.path.join(self.root, 'journal', f'{key}.json')

  def load_chunk(self, key: str, trials: list[int] | None = None
                 ) -> list[records.TrialRecord] | None:
    """The records of a finished chunk (of trial ids `trials`, when given), or None if it has not
    finished, or if its journal entry fails its checksum or holds other trials (then named in
    one warning: the chunk is trained again and its entry rewritten)."""
    path = self._journal_path(key)
    if not files.exists(path):
      return None
    done, problem = integrity.read_records(files.read_text(path))
    if not problem and trials is not None and [r.trial for r in done] != list(trials):
      problem = f'it holds trials {[r.trial for r in done]}, not {list(trials)}'
    if problem:
      absl_logging.warning('journal entry %s is damaged (%s): training its trials again', path,
                           problem)
      return None
    return done

  def save_chunk(self, key: str, done: list[records.TrialRecord]) -> None:
    """Journals a finished chunk's records, then (unless `keep`) removes its mid-run checkpoints:
    the journal is all a resume or a rebuild reads of a finished chunk again."""
    if parallel.is_writer():  # Every process holds the same records; Orbax saves are collective.
      files.write_text(self._journal_path(key), integrity.records_text(done))
      if not self.keep:
        self._discard(key)

  def _discard(self, key: str) -> None:
    """Removes chunk `key`'s population checkpoints and their manifests (bnlab's own folders)."""
    manager = self._managers.pop(key, None)
    if manager is not None:
      manager.close()
    for folder in ('populations', 'manifests'):
      path = os.path.join(self.root, folder, key)
      if files.exists(path):
        files.rmtree(path)

  def mark_complete(self, workdir: str, summary: dict[str, Any]) -> None:
    """Writes complete.json: `summary` and the SHA-256 of each results file now in `workdir`."""
    if parallel.is_writer():
      files.write_text(os.path.join(workdir, integrity.COMPLETE_FILE),
                       json.dumps({**summary, 'files': integrity.results_digests(workdir)},
                                  indent=1) + '\n')

  def close(self) -> None:
    for manager in self._managers.values():
      manager.close()
    self._managers.clear()
