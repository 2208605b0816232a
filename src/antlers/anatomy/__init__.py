"""Look inside a network: a layer report that shows the arithmetic, and a translation check.

* :func:`summary` (``table.py``): shapes, parameter formulas, receptive fields, MACs, and a
  :class:`ShapeError` that names the layer where a shape breaks.
* :func:`equivariance` (``equivariance.py``): how far a module is from commuting with a shift.
* ``trace.py``: the forward hooks both are built on.
"""

from antlers.anatomy.equivariance import equivariance
from antlers.anatomy.table import ShapeError, Summary, summary

__all__ = ["ShapeError", "Summary", "equivariance", "summary"]
