INSERT INTO interpretability_log (model_name, model_version, window_start, window_end, feature, importance_gain,
    mean_abs_shap, shap_rank, n_predictions, run_id)
VALUES (%(model)s, %(version)s, %(start)s, %(end)s, %(feature)s, %(gain)s, %(shap)s, %(rank)s, %(n)s, %(run_id)s);
