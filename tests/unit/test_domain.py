"""The service's plain values (``server.domain``): one top-k, and requests and results that
cross a process boundary unchanged; and the one table that gives domain errors a status."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import server.errors as errors
from engines.scores import top_k_indices
from server.api.errors import STATUS, status_of
from server.domain import TensorRequest, TensorResult, TextRequest, TextResult


def test_top_k_is_best_first_and_stable_on_ties() -> None:
    scores = np.array([[0.1, 0.4, 0.4, 0.1], [0.7, 0.1, 0.1, 0.1]], dtype=np.float32)
    np.testing.assert_array_equal(top_k_indices(scores, 3), [[1, 2, 0], [0, 1, 2]])
    np.testing.assert_array_equal(top_k_indices(scores, 1), [[1], [0]])  # argmax: first of a tie
    assert top_k_indices(scores, 99).shape == (2, 4)  # past the classes: all of them
    assert top_k_indices(scores[:, None, :], 2).shape == (2, 1, 2)  # along the last axis
    # no k: every index, sorted (a /rank answer without top_k)
    np.testing.assert_array_equal(top_k_indices(scores[0]), [1, 2, 0, 3])
    with pytest.raises(ValueError, match="at least 1"):
        top_k_indices(scores, 0)


def test_text_result_views_follow_top() -> None:
    probs = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]], dtype=np.float32)
    result = TextResult("m", 3, ("a", "b", "c"), probs, top_k_indices(probs, 2))
    assert result.best_labels() == ["b", "a"]
    rows = result.predictions()
    assert [[(p.label, round(p.score, 6)) for p in row] for row in rows] == [
        [("b", 0.5), ("c", 0.3)], [("a", 0.6), ("c", 0.3)]]


def test_requests_and_results_survive_pickling() -> None:
    probs = np.eye(2, dtype=np.float32)
    values = [
        TextRequest("m", None, ("hi", "there"), top_k=2, timeout_us=5, priority=1),
        TextResult("m", 1, ("a", "b"), probs, top_k_indices(probs, 1)),
        TensorRequest("m", "2", {"x": np.arange(4.0).reshape(2, 2)}),
        TensorResult("m", 2, {"y": np.ones((2, 1), dtype=np.float32)}, ("a",)),
    ]
    for value in values:
        back = pickle.loads(pickle.dumps(value))
        assert type(back) is type(value)
        for name, field in vars(value).items():
            got = vars(back)[name]
            if isinstance(field, np.ndarray):
                np.testing.assert_array_equal(got, field)
            elif isinstance(field, dict):
                assert got.keys() == field.keys()
                for k in field:
                    np.testing.assert_array_equal(got[k], field[k])
            else:
                assert got == field, name


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_every_domain_error_has_its_own_row_in_the_status_table() -> None:
    declared = {cls for cls in vars(errors).values()
                if isinstance(cls, type) and issubclass(cls, errors.SluiceError)}
    declared.discard(errors.SluiceError)
    assert _subclasses(errors.SluiceError) == declared  # none defined elsewhere
    assert declared == {cls for cls, _ in STATUS}, "a new domain error needs a status on purpose"


@pytest.mark.parametrize(("error", "status"), [
    (errors.PayloadTooLarge("x"), 413), (errors.InvalidInput("x"), 400),
    (errors.DeadlineUnreachable("x"), 429), (errors.QueueFull("x"), 429),
    (errors.RequestCancelled("x"), 499), (errors.SluiceError("x"), 500),
])
def test_the_most_specific_row_wins(error: errors.SluiceError, status: int) -> None:
    assert status_of(error) == status
