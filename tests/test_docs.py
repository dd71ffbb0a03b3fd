import inspect

import pytest

import sbikit.data
import sbikit.diagnostics
import sbikit.distributions
import sbikit.flows
import sbikit.inference
import sbikit.lazy
import sbikit.nn
import sbikit.numerics
import sbikit.transforms
import sbikit.utils

PUBLIC = [
    (module.__name__, name, getattr(module, name))
    for module in (
        sbikit.data,
        sbikit.distributions,
        sbikit.transforms,
        sbikit.lazy,
        sbikit.nn,
        sbikit.flows,
        sbikit.numerics,
        sbikit.utils,
        sbikit.inference,
        sbikit.diagnostics,
    )
    for name in module.__all__
    if not getattr(module, name).__module__.startswith("torch.")  # torch's own, re-exported
]


@pytest.mark.parametrize(("module", "name", "obj"), PUBLIC, ids=[f"{m}.{n}" for m, n, _ in PUBLIC])
def test_public_object_has_docstring_with_example(module, name, obj):
    doc = inspect.getdoc(obj)
    assert doc, f"{module}.{name} has no docstring"
    assert ">>>" in doc, f"{module}.{name} has no runnable example"
