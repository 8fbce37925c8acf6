"""Two sweeps side by side: what differs in their configs, their results, and their figures."""

import os

from bnlab import files
from bnlab import records
from bnlab import space
from bnlab.reporting import figures
from bnlab.reporting import pages
from bnlab.reporting import sweepfiles


def config_differences(a: sweepfiles.Sweep, b: sweepfiles.Sweep) -> list[list[str]]:
  """Rows (field, value in a, value in b) for every config field that differs."""
  fa, fb = space.flat_fields(a.config), space.flat_fields(b.config)
  return [[k, records.fmt(fa.get(k, '')), records.fmt(fb.get(k, ''))]
          for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def _side_by_side(left, right):
  return f'<div class="pair"><div>{left}</div><div>{right}</div></div>'


def compare_html(a: sweepfiles.Sweep, b: sweepfiles.Sweep) -> str:
  """The comparison page of sweeps a and b (sweepfiles.Sweep each)."""
  page_a, page_b = pages.make_page(a), pages.make_page(b)
  parts = ['<h2>Config differences</h2>',
           pages.html_table(['field', a.name, b.name], config_differences(a, b), 'differences'),
           '<h2>Metric</h2>', pages.img(figures.compare_metric([a, b]), 'metric of both'),
           _side_by_side(pages.html_body(page_a, images=False),
                         pages.html_body(page_b, images=False))]
  figs_b = {name: (title, data) for name, title, data in page_b.images}
  seen = set()
  for name, title, data in page_a.images:
    other = figs_b.get(name)
    parts.append(f'<h3>{title}</h3>' + _side_by_side(
        pages.img(data, title), pages.img(other[1], other[0]) if other else '(not in this sweep)'))
    seen.add(name)
  for name, (title, data) in figs_b.items():
    if name not in seen:
      parts.append(f'<h3>{title}</h3>' + _side_by_side('(not in this sweep)',
                                                       pages.img(data, title)))
  return pages.html_page(f'{a.name} vs {b.name}', '\n'.join(parts))


def write_compare(workdir: str, other: str) -> str:
  """Writes WORKDIR/compare_<other name>.html; returns its path."""
  a, b = sweepfiles.load(workdir), sweepfiles.load(other)
  path = os.path.join(workdir, f'compare_{b.name}.html')
  files.write_text(path, compare_html(a, b))
  return path
