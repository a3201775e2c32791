"""Test support shipped with the package: synthetic network outputs and slow loop oracles.

Used by the test suite and by `grapepose bench` to compare the fast code against; never imported on
a predict or training path.

- `grapepose.testing.planted`: network outputs a perfect model would give for known people.
- `grapepose.testing.reference_targets`: the training targets (docs/DESIGN.md) written as plain loops.
"""
