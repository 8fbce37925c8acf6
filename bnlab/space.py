"""Search-space specs (`'log_uniform(1e-4, 1e-1)'`, ...) and the samplers over them.

A spec maps a number u in [0, 1) to a value through its inverse CDF, so every sampler (random,
quasi-random, coarse-to-fine boxes) only has to produce u's. Trial i's u for a field comes from
a generator seeded with (seed, i, field), so trial i keeps its setting when num_trials grows and
when other fields are added to the space.

A spec may end with `if FIELD == VALUE` or `if FIELD in (V1, V2)` (a `Condition`): where FIELD's
value in the trial is none of the values, the field is left out of the trial's setting (`active`)
and keeps its config value. Its u is still drawn, so no other field's value moves.
"""

import ast
import dataclasses
import io
import math
import re
import tokenize
from typing import Any
import zlib

import numpy as np

KINDS = ('uniform', 'log_uniform', 'one_minus_log_uniform', 'int_uniform', 'choice', 'grid')
NUMERIC_KINDS = ('uniform', 'log_uniform', 'one_minus_log_uniform', 'int_uniform')
_SPEC_RE = re.compile(r'^\s*([a-z_]+)\s*\((.*)\)\s*$', re.DOTALL)
_CONDITION_FORM = 'end a spec with `if FIELD == VALUE` or `if FIELD in (V1, V2)`'


class SpecError(ValueError):
  """A malformed or impossible spec; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Condition:
  """`if field == v` / `if field in (v1, v2)`. `base` is field's config value (set by
  prechecks.bind_conditions): what it reads where field is not swept, or swept but inactive."""
  field: str
  values: tuple
  text: str
  base: Any = None
  bound: bool = False

  def holds(self, setting: dict[str, Any]) -> bool:
    """Whether the condition holds in a trial whose (active) swept values are `setting`."""
    if self.field not in setting and not self.bound:  # A programming error, not the user's.
      raise ValueError(f'`if {self.text}`: unbound; call prechecks.bind_conditions first')
    return setting.get(self.field, self.base) in self.values


@dataclasses.dataclass(frozen=True)
class Spec:
  kind: str
  args: tuple
  condition: Condition | None = None

  @property
  def scale(self) -> str:
    """How values are spread: 'linear', 'log' (of x) or 'one_minus_log' (of 1 - x)."""
    return {'log_uniform': 'log', 'one_minus_log_uniform': 'one_minus_log'}.get(
        self.kind, 'linear')

  @property
  def is_numeric(self) -> bool:
    return self.kind in NUMERIC_KINDS

  def value(self, u: float) -> Any:
    """The value at quantile u in [0, 1)."""
    u = min(max(float(u), 0.0), 1.0 - 1e-12)
    if self.kind in ('choice', 'grid'):
      return self.args[int(u * len(self.args))]
    lo, hi = self.args
    if self.kind == 'uniform':
      return lo + u * (hi - lo)
    if self.kind == 'log_uniform':
      return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    if self.kind == 'one_minus_log_uniform':  # 1 - x with x log-uniform in (1 - hi, 1 - lo).
      return 1.0 - math.exp(math.log(1 - hi) + (1 - u) * (math.log(1 - lo) - math.log(1 - hi)))
    return int(lo + math.floor(u * (hi - lo + 1)))  # int_uniform, both ends included.

  def quantile(self, value: float) -> float:
    """The inverse of `value` for numeric specs: where `value` sits in [0, 1]."""
    lo, hi = self.args
    if self.kind == 'log_uniform':
      return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    if self.kind == 'one_minus_log_uniform':
      return 1 - (math.log(1 - value) - math.log(1 - hi)) / (math.log(1 - lo) - math.log(1 - hi))
    if self.kind == 'int_uniform':
      return (value - lo + 0.5) / (hi - lo + 1)
    return (value - lo) / (hi - lo)


def parse(text: str, field: str = 'spec') -> Spec:
  """Parses one spec string; raises SpecError naming `field` when it is not valid."""
  body, clause = _split_condition(text)
  condition = None if clause is None else _parse_condition(clause, field, text)
  match = _SPEC_RE.match(body)
  if not match or match.group(1) not in KINDS:
    raise SpecError(f'sweep.space.{field}={text!r} is not a spec; write one of '
                    + ', '.join(f'{k}(...)' for k in KINDS))
  kind = match.group(1)
  try:
    args = ast.literal_eval(f'({match.group(2)},)') if match.group(2).strip() else ()
  except (SyntaxError, ValueError):
    raise SpecError(f'sweep.space.{field}={text!r}: arguments must be Python literals') from None
  _check_args(kind, args, field, text)
  return Spec(kind, tuple(args), condition)


def _split_condition(text: str) -> tuple[str, str | None]:
  """(the spec, the text after its `if` outside brackets and strings, or None if it has none)."""
  depth, lines = 0, text.splitlines(keepends=True)
  try:
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
      if token.type == tokenize.OP:
        depth += (token.string in '([{') - (token.string in ')]}')
      elif token.type == tokenize.NAME and token.string == 'if' and depth == 0:
        at = sum(map(len, lines[:token.start[0] - 1])) + token.start[1]
        return text[:at], text[at + 2:]
  except (tokenize.TokenError, SyntaxError):  # Unbalanced: parse() words the error.
    pass
  return text, None


def _parse_condition(clause: str, field: str, text: str) -> Condition:
  """`FIELD == VALUE` or `FIELD in (V1, ...)`; values are literals, a bare word a string."""
  where = f'sweep.space.{field}={text!r}'
  try:
    node = ast.parse(clause.strip(), mode='eval').body
  except SyntaxError:
    node = None
  if not (isinstance(node, ast.Compare) and len(node.ops) == 1
          and isinstance(node.ops[0], (ast.Eq, ast.In)) and _dotted(node.left)):
    raise SpecError(f'{where}: malformed condition `if {clause.strip()}`; {_CONDITION_FORM}')
  right, listed = node.comparators[0], isinstance(node.ops[0], ast.In)
  if listed and not (isinstance(right, (ast.Tuple, ast.List)) and right.elts):
    raise SpecError(f'{where}: `in` needs a parenthesised list of values; {_CONDITION_FORM}')
  try:
    values = tuple(_literal(v) for v in (right.elts if listed else [right]))
  except ValueError:
    raise SpecError(f'{where}: condition values must be Python literals or bare words') from None
  return Condition(_dotted(node.left), values, clause.strip())


def _dotted(node: ast.AST) -> str | None:
  """`optimizer.name` from its Attribute node; None for anything but a dotted name."""
  if isinstance(node, ast.Name):
    return node.id
  parent = _dotted(node.value) if isinstance(node, ast.Attribute) else None
  return parent and f'{parent}.{node.attr}'


def _literal(node: ast.AST) -> Any:
  """A condition value: a bare word (`momentum`) is its text, else a Python literal."""
  return node.id if isinstance(node, ast.Name) else ast.literal_eval(node)


def _check_args(kind, args, field, text):
  where = f'sweep.space.{field}={text!r}'
  if kind in ('choice', 'grid'):
    if not args:
      raise SpecError(f'{where}: {kind} needs at least one value')
    return
  if len(args) != 2 or not all(isinstance(a, (int, float)) for a in args):
    raise SpecError(f'{where}: {kind} takes two numbers (low, high)')
  lo, hi = args
  if not lo < hi:
    raise SpecError(f'{where}: low must be below high')
  if kind == 'log_uniform' and lo <= 0:
    raise SpecError(f'{where}: log_uniform bounds must be > 0')
  if kind == 'one_minus_log_uniform' and not 0 < lo < hi < 1:
    raise SpecError(f'{where}: one_minus_log_uniform bounds must lie in (0, 1)')
  if kind == 'int_uniform' and not all(isinstance(a, int) for a in args):
    raise SpecError(f'{where}: int_uniform bounds must be integers')


def flat_fields(tree: Any, prefix: str = '') -> dict[str, Any]:
  """{dotted name: value} of every leaf of a nested dict or ConfigDict."""
  flat = {}
  for key, value in tree.items():
    if hasattr(value, 'items'):
      flat.update(flat_fields(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def flatten(space: Any) -> dict[str, str]:
  """{'optimizer.learning_rate': 'log_uniform(..)', ...} for the non-empty entries of a space."""
  return {name: text for name, text in flat_fields(space).items() if text}


def parse_space(space: Any) -> dict[str, Spec]:
  """The swept fields of a `sweep.space`, as {dotted field: Spec}, sorted by name."""
  specs = {field: parse(text, field) for field, text in sorted(flatten(space).items())}
  condition_order(specs)  # Refuses circular conditions.
  return specs


def condition_order(specs: dict[str, Spec]) -> list[str]:
  """The fields of `specs`, each after the swept field its condition reads (else by name);
  raises SpecError naming a field whose conditions lead back to it."""
  depth = {}
  for field in specs:
    chain = [field]
    while (cond := specs[chain[-1]].condition) and cond.field in specs:
      if cond.field in chain:
        loop = ' -> '.join(chain[chain.index(cond.field):] + [cond.field])
        raise SpecError(f'sweep.space.{field}: circular conditions: {loop}')
      chain.append(cond.field)
    depth[field] = len(chain)
  return sorted(specs, key=lambda f: (depth[f], f))


def conditional(specs: dict[str, Spec]) -> bool:
  return any(spec.condition for spec in specs.values())


def active(specs: dict[str, Spec], setting: dict[str, Any]) -> dict[str, Any]:
  """`setting` without the fields whose condition does not hold, parents decided first (a
  field whose parent is inactive reads the parent's config value)."""
  out = dict(setting)
  for field in condition_order(specs):
    cond = specs[field].condition
    if cond and field in out and not cond.holds(out):
      del out[field]
  return out


def field_key(seed: int, trial: int, field: str) -> list[int]:
  """The seed of the generator behind trial `trial`'s value for `field`."""
  return [seed, trial, zlib.crc32(field.encode())]


def random_trials(specs: dict[str, Spec], seed: int, num_trials: int) -> list[dict[str, Any]]:
  """num_trials settings; trial i depends only on (seed, i) and each field's own spec."""
  trials = np.arange(num_trials)
  columns = {field: random_u(seed, trials, field).tolist() for field in specs}
  return [active(specs, {field: spec.value(columns[field][i]) for field, spec in specs.items()})
          for i in range(num_trials)]


def random_u(seed: int, trials: np.ndarray, field: str) -> np.ndarray:
  """[len(trials)] float64: each trial's u for `field`, bit for bit
  `np.random.default_rng(field_key(seed, trial, field)).random()`.

  One generator per (trial, field) costs ~9 us, 75 s for the fields of two million trials before
  the first epoch; numpy's own SeedSequence and PCG64 steps, run here on whole columns of trials,
  cost ~0.2 us a value. tests/test_strategies.py holds the two to the same bits.
  """
  trials = np.asarray(trials, np.int64).reshape(-1)
  if trials.size and (trials.min() < 0 or trials.max() >= 2**32):  # Not one 32-bit word each.
    return np.array([np.random.default_rng(field_key(seed, int(t), field)).random()
                     for t in trials], np.float64)
  seed_words, field_words = (_uint32_words(n) for n in (seed, zlib.crc32(field.encode())))
  constant = lambda w: np.full(trials.shape, w, np.uint32)
  entropy = ([constant(w) for w in seed_words] + [trials.astype(np.uint32)]
             + [constant(w) for w in field_words])
  with np.errstate(over='ignore'):
    return _pcg64_first_double(_seed_sequence_state(entropy))


# numpy.random.SeedSequence's constants (numpy/random/bit_generator.pyx) and PCG64's multiplier.
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43b0d7e5, 0x931e8875, 0x8b51f9dd, 0x58f38ded
_MIX_L, _MIX_R = 0xca01f9dd, 0x4973f715
_PCG_MULT = (np.uint64(2549297995355413924), np.uint64(4865540595714422341))  # (high, low)


def _uint32_words(n: int) -> list[int]:
  """An int as SeedSequence splits it: 32-bit words, least significant first; 0 is one word."""
  words = [] if n else [0]
  while n:
    words, n = words + [n & 0xffffffff], n >> 32
  return words


def _seed_sequence_state(entropy: list[np.ndarray]) -> list[np.ndarray]:
  """SeedSequence(entropy).generate_state(4, uint64) per column: 4 [n] uint64 arrays."""
  hash_const = [_INIT_A]

  def hashmix(value, mult=_MULT_A):
    value = value ^ np.uint32(hash_const[0])
    hash_const[0] = hash_const[0] * mult & 0xffffffff
    value = value * np.uint32(hash_const[0])
    return value ^ (value >> np.uint32(16))

  def mix(x, y):
    value = np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y
    return value ^ (value >> np.uint32(16))

  zero = np.zeros_like(entropy[0])
  pool = [hashmix(entropy[i] if i < len(entropy) else zero) for i in range(4)]
  for src in range(4):
    for dst in range(4):
      if src != dst:
        pool[dst] = mix(pool[dst], hashmix(pool[src]))
  for src in range(4, len(entropy)):
    for dst in range(4):
      pool[dst] = mix(pool[dst], hashmix(entropy[src]))
  hash_const[0] = _INIT_B
  words = [hashmix(pool[i % 4], _MULT_B).astype(np.uint64) for i in range(8)]
  return [words[2 * k] | (words[2 * k + 1] << np.uint64(32)) for k in range(4)]


def _mul_high(a, b):
  """The high 64 bits of the 128-bit products a * b (uint64 arrays), from 32-bit halves."""
  low, half = np.uint64(0xffffffff), np.uint64(32)
  a0, a1, b0, b1 = a & low, a >> half, b & low, b >> half
  p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
  middle = (p00 >> half) + (p01 & low) + (p10 & low)
  return p11 + (p01 >> half) + (p10 >> half) + (middle >> half)


def _add128(high, low, add_high, add_low):
  total = low + add_low
  return high + add_high + (total < low).astype(np.uint64), total


def _pcg_step(high, low, inc_high, inc_low):
  """One PCG64 step on 128-bit states held as (high, low): state * multiplier + increment."""
  mult_high, mult_low = _PCG_MULT
  product_high = _mul_high(low, mult_low) + low * mult_high + high * mult_low
  return _add128(product_high, low * mult_low, inc_high, inc_low)


def _pcg64_first_double(state: list[np.ndarray]) -> np.ndarray:
  """The first Generator.random() of PCG64 seeded with `state` (its seed, then increment)."""
  seed_high, seed_low, seq_high, seq_low = state
  one = np.uint64(1)
  inc_high, inc_low = (seq_high << one) | (seq_low >> np.uint64(63)), (seq_low << one) | one
  zero = np.zeros_like(seed_high)
  high, low = _pcg_step(zero, zero, inc_high, inc_low)  # pcg_setseq_128_srandom_r.
  high, low = _pcg_step(*_add128(high, low, seed_high, seed_low), inc_high, inc_low)
  high, low = _pcg_step(high, low, inc_high, inc_low)  # next64: a step, then the XSL-RR output.
  xored, rotation = high ^ low, high >> np.uint64(58)
  out = (xored >> rotation) | (xored << ((np.uint64(64) - rotation) & np.uint64(63)))
  return (out >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def check_grid(specs: dict[str, Spec]) -> None:
  """Raises SpecError naming the first spec that is not grid(...)."""
  not_grid = [f for f, s in specs.items() if s.kind != 'grid']
  if not_grid:
    raise SpecError(f'sweep.space.{not_grid[0]}: sweep.strategy=grid takes only grid(...) specs')


def get_field(config: Any, field: str) -> Any:
  section, _, key = field.rpartition('.')
  node = config
  for part in filter(None, section.split('.')):
    node = node[part]
  return node[key]


def with_overrides(config: Any, overrides: dict[str, Any]) -> Any:
  """A copy of `config` with {dotted field: value} applied (ints widened where fields are float)."""
  config = config.copy_and_resolve_references()
  for field, value in overrides.items():
    section, _, key = field.rpartition('.')
    node = get_field(config, section) if section else config
    if isinstance(node[key], float) and isinstance(value, int):
      value = float(value)
    node[key] = value
  return config


def _optuna_choice(value):
  """A categorical value as Optuna stores it: tuples (widths) by their text."""
  return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def optuna_distribution(spec: Spec) -> Any:
  """The Optuna distribution of `spec`, on the scale the spec samples: log_uniform as a log
  FloatDistribution, one_minus_log_uniform as a log FloatDistribution of 1 - x, int_uniform as
  an IntDistribution, choice and grid as a categorical one. TPE, GP and the report's fANOVA
  importance all see a space through this one mapping."""
  import optuna  # pylint: disable=import-outside-toplevel  # Only the runs that use Optuna pay.
  if not spec.is_numeric:
    return optuna.distributions.CategoricalDistribution([_optuna_choice(v) for v in spec.args])
  lo, hi = spec.args
  if spec.kind == 'int_uniform':
    return optuna.distributions.IntDistribution(lo, hi)
  if spec.kind == 'one_minus_log_uniform':
    return optuna.distributions.FloatDistribution(1 - hi, 1 - lo, log=True)
  return optuna.distributions.FloatDistribution(lo, hi, log=spec.kind == 'log_uniform')


def to_optuna(spec: Spec, value: Any) -> Any:
  """A swept value as the Optuna parameter of `optuna_distribution(spec)`."""
  if not spec.is_numeric:
    return _optuna_choice(value)
  return 1 - value if spec.kind == 'one_minus_log_uniform' else value


def from_optuna(spec: Spec, param: Any) -> Any:
  """The swept value of an Optuna parameter of `optuna_distribution(spec)`."""
  if not spec.is_numeric:
    return spec.args[[_optuna_choice(v) for v in spec.args].index(param)]
  return 1 - param if spec.kind == 'one_minus_log_uniform' else param
