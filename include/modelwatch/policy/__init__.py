"""Policy replay: does retraining on evidence (the closed loop) beat never retraining or a fixed calendar?

``policies``: the retraining policies compared and what each does at a month's end (pure);
``periods``: calm and stressed months from realized volatility, stress episodes and their detection (pure);
``report``: a replayed policy's results read from its sandbox schema, the comparison table and the plots.
The replay itself (``include/tasks/policy.py``) runs the task bodies of the DAGs month by month.
"""
