"""Active learning: the queue of predictions a model could not decide, human labels, and their way into retraining.

* :mod:`band` (pure): the three-class decision confidence, the capture band and its priorities, per-model settings;
* :mod:`store`: the ``active_learning_queue`` (migration 017): capture at scoring, expiry and outcomes, picking,
  labelling (every state change checked by PostgreSQL), statistics and the labels a retrain uses;
* :mod:`labels` (pure): how human labels enter a training set (weight, disagreement rule);
* :mod:`review`: what a person sees to decide one item (price context, probabilities, top SHAP features).
"""
