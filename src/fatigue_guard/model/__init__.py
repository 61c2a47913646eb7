"""What every side shares about a fitted model, and nothing about where it runs.

- :mod:`~fatigue_guard.model.pipeline`: the scikit-learn pipeline definition and its scores;
- :mod:`~fatigue_guard.model.threshold`: the operating point at the precision floor;
- :mod:`~fatigue_guard.model.onnx_export`: pipeline -> ONNX bytes, self-checked;
- :mod:`~fatigue_guard.model.predictors`: ONNX Runtime and scikit-learn predictors;
- :mod:`~fatigue_guard.model.vectors`: contract-range probe vectors (export check, golden sets);
- :mod:`~fatigue_guard.model.profile` and :mod:`~fatigue_guard.model.stats`: the reference
  profile stored with a model, and the statistics it is built and compared with.

Training, serving, the edge, the monitor and the phone's reference client import this package;
it imports none of them (an import-linter contract keeps it so).
"""
