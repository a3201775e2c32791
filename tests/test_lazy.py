import subprocess
import sys

import pytest


def test_lazy_exports_import_on_first_use_and_cache():
    code = (
        "import sys, grapepose.io as io\n"
        "assert 'grapepose.predict_job.runner' not in sys.modules\n"
        "f = io.read_image\n"
        "assert 'grapepose.io.files' in sys.modules and 'grapepose.predict_job.runner' not in sys.modules\n"
        "assert vars(io)['read_image'] is f and 'VideoReader' in dir(io)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_is_an_attribute_error():
    import grapepose.engine

    with pytest.raises(AttributeError, match="^module 'grapepose.engine' has no attribute 'Trainr'$"):
        grapepose.engine.Trainr  # noqa: B018
