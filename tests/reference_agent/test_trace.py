"""Trace retention (reference_agent/trace.py): deterministic sampling, keep policy, pruning."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reference_agent.store import Store
from reference_agent.trace import keep_in_full, prune, sample_fraction

ROUTINE = {
    "requested_approval": False,
    "failed": False,
    "hit_budget": False,
    "touched_high_risk": False,
}


@given(st.text(min_size=1, max_size=40), st.floats(0, 1))
def test_sampling_is_deterministic_and_rate_bounded(run_id: str, rate: float) -> None:
    fraction = sample_fraction(run_id)
    assert 0.0 <= fraction < 1.0
    assert sample_fraction(run_id) == fraction
    kept = keep_in_full(run_id, rate=rate, **ROUTINE)
    assert kept == keep_in_full(run_id, rate=rate, **ROUTINE)
    assert kept == (fraction < rate)
    assert keep_in_full(run_id, rate=1.0, **ROUTINE)
    assert not keep_in_full(run_id, rate=0.0, **ROUTINE)


@given(st.text(max_size=20), st.sampled_from(sorted(ROUTINE)))
def test_high_risk_runs_are_always_kept(run_id: str, flag: str) -> None:
    assert keep_in_full(run_id, rate=0.0, **{**ROUTINE, flag: True})


def test_sampling_rate_is_roughly_honoured() -> None:
    kept = sum(keep_in_full(f"run-{i}", rate=0.1, **ROUTINE) for i in range(2000))
    assert 120 < kept < 280


def test_prune_deletes_only_old_finished_runs() -> None:
    store = Store(None)
    with store.transaction() as db:
        for run_id, finished in (("old", 10.0), ("new", 990.0), ("open", None)):
            store.insert_run(db, run_id, None, {}, "running", 0.0)
            store.update_run(db, run_id, finished_at=finished)
            store.insert_trace(db, run_id, {"kind": "transition"}, 0.0)
    assert prune(store, now=1000.0, older_than_s=100.0) == 1
    assert store.trace_records("old") == []
    assert store.trace_records("new")
    assert store.trace_records("open")
    store.close()
