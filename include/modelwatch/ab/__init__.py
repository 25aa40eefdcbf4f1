"""Champion/challenger A/B tests: assignment, statistics and the daily decision. Pure Python + numpy/scipy,
no Airflow, no database, no pandas: counts and arrays in, frozen dataclasses out.

* :mod:`.assignment` (standard library only, cheap to import at DAG parse time): which arm a unit
  (symbol x session) goes to: ``arm_for``, ``unit_key``, ``unit_hash``;
* :mod:`.stats` (numpy/scipy): ``two_proportion_z``, ``mcnemar``, ``sequential_paired`` (the always-valid paired
  test the decision acts on), ``srm_check``, ``thompson_split``, the count containers ``PairedCounts`` /
  ``ArmCounts`` and their builders ``paired_counts`` / ``arm_counts``;
* :mod:`.decision`: ``decide(TestState, Evidence) -> Decision`` (CONTINUE / PROMOTE / STOP / INCONCLUSIVE) and
  ``validate_test_config``.

Nothing is re-exported here, so importing :mod:`.assignment` does not load scipy.
"""
