-- The realized value of an earlier label-free estimate, once all its predictions matured.
UPDATE performance_estimates SET realized = %(realized)s, abs_error = abs(estimate - %(realized)s),
    abs_error_unchecked = abs(estimate_unchecked - %(realized)s), realized_n = %(n)s, realized_as_of = %(as_of)s
WHERE model_name = %(model)s AND model_version = %(version)s AND window_end = %(window_end)s AND metric = %(metric)s;
