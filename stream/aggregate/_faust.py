"""faust, imported with the command line hidden from it.

On import, faust reads ``sys.argv`` for options of its own command line (``--loop``/``-L``,
``--datadir``): ``appraise produce --loop --event-time live`` would make it load an event-loop
implementation called ``--event-time`` and fail. Every module of the stream app imports faust from
here, so the first import happens with an empty command line (its settings are passed as
arguments, never read from argv).
"""

from __future__ import annotations

import sys

_hidden = sys.argv[1:]
# In place: faust's parser took this very list object as a default argument.
sys.argv[1:] = []
try:
    import faust
finally:
    sys.argv[1:] = _hidden

__all__ = ["faust"]
