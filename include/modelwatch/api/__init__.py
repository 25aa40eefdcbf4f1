"""ModelWatch monitoring API, Airflow-free part: typed view models (:mod:`.models`), the read queries
the API serves (:mod:`.queries`) and the input error they raise (:mod:`.errors`).

The FastAPI app that Airflow's API server mounts lives elsewhere and only calls into this package.
"""
