"""Test oracles: synthetic network outputs, slow loop versions and dense forms of the fast code.

Tests import them as `oracles.<module>` (tests/ is on `sys.path`, as for `people_matching`). They
import the package's constants (the stride, the fit's tolerances) instead of repeating them.

- `planted`: network outputs a perfect model would give for known people.
- `dense_maps`: the flip-merged and upsampled maps built densely (what `ScaleReader` reads pointwise).
- `reference_decode`: the previous full-resolution decoder, the oracle of `grapepose.decode`.
- `reference_targets`: the training targets (docs/DESIGN.md) written as plain loops.
"""
