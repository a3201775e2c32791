"""The `grapepose predict` job: many inputs through the model, results written as frames finish.

- `job`: the job (`PredictJob`), its outcome (`PredictOutcome`) and its run in one process (`run_job`);
- `sharded`: the same job under torchrun (`run_sharded`), over `shard` (the split, the ranks' journals);
- `runner`: the loop (`run_predict`: frames -> drawings + journal lines);
- `journal`: the output folder (lock, journal, `results.json`, image ids); `resume`: `--resume`;
- `stop`: Ctrl-C / SIGTERM as a request to stop (`StopRequest`).

`grapepose.cli.predict` turns the command line into a job and prints its outcome. Names are
imported lazily.
"""

from __future__ import annotations

from grapepose._lazy import lazy_exports

_EXPORTS = {
    "PredictJob": "grapepose.predict_job.job",
    "PredictOutcome": "grapepose.predict_job.job",
    "run_job": "grapepose.predict_job.job",
    "run_sharded": "grapepose.predict_job.sharded",
    "PredictOptions": "grapepose.predict_job.runner",
    "PredictSummary": "grapepose.predict_job.runner",
    "run_predict": "grapepose.predict_job.runner",
    "OutputFolder": "grapepose.predict_job.journal",
    "OutputError": "grapepose.predict_job.journal",
    "read_journal": "grapepose.predict_job.journal",
    "StopRequest": "grapepose.predict_job.stop",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
