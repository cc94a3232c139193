"""skops imported without the torch its trusted-type scan would import, and still trusting sklearn's estimators."""

import sys

import pytest
from sklearn.linear_model import LinearRegression

from profcast.jobmodel.skops_io import ARRAY_SHIMS, skops_io


def test_a_fresh_skops_import_leaves_torch_and_the_stand_ins_out(monkeypatch, tmp_path):
    # a fresh import: skops (and any array shim or torch an earlier test imported) out of sys.modules for this test only
    fresh = [n for n in sys.modules if n.split(".")[0] in ("skops", "torch") or n.startswith(ARRAY_SHIMS[0][:-5])]
    for name in fresh:
        monkeypatch.delitem(sys.modules, name)
    skops = skops_io()
    assert "torch" not in sys.modules
    assert not any(name in sys.modules for name in ARRAY_SHIMS)  # stand-ins removed, none imported for real
    path = tmp_path / "linear.skops"
    skops.dump(LinearRegression().fit([[0.0], [1.0]], [1.0, 3.0]), path)
    assert skops.get_untrusted_types(file=path) == []  # sklearn's estimators were listed as trusted
    assert skops.load(path).predict([[2.0]])[0] == pytest.approx(5.0)  # 1 + 2x at x = 2


def test_a_second_call_returns_the_imported_module():
    assert skops_io() is skops_io() is sys.modules["skops.io"]
