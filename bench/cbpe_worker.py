"""NannyML CBPE on the replay predictions; runs in the isolated nannyml venv.

    python bench/cbpe_worker.py REFERENCE_CSV ANALYSIS_CSV

Reference: predictions with known labels before the analysis period (the
champion's purged walk-forward out-of-fold predictions, 1999-2006). Analysis:
2007-2008 predictions, chunked by calendar month. CBPE (multiclass, its
default isotonic calibration) estimates accuracy per chunk. Prints one JSON
line: {"status": "ok", "chunks": [{"month": "2007-01", "estimated_accuracy": ...}]}.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import pandas as pd


def main(ref_csv: str, ana_csv: str) -> None:
    warnings.filterwarnings("ignore")
    import nannyml as nml

    classes = ["SELL", "HOLD", "BUY"]
    ref = pd.read_csv(ref_csv, parse_dates=["ts"])
    ana = pd.read_csv(ana_csv, parse_dates=["ts"])
    t = time.perf_counter()
    est = nml.CBPE(
        metrics=["accuracy"],
        y_pred_proba={c: f"p_{c}" for c in classes},
        y_pred="predicted_label",
        y_true="realized_label",
        problem_type="classification_multiclass",
        timestamp_column_name="ts",
        chunk_period="M",
    )
    est.fit(ref)
    res = est.estimate(ana.drop(columns=["realized_label"])).filter(period="analysis").to_df()
    chunks = []
    for _, row in res.iterrows():
        start = pd.Timestamp(row[("chunk", "start_date")])
        chunks.append({"month": f"{start:%Y-%m}", "estimated_accuracy": float(row[("accuracy", "value")])})
    out = {"status": "ok", "chunks": chunks, "wall_s": time.perf_counter() - t, "nannyml": nml.__version__}
    sys.stdout.write("\n" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
