SELECT metric, value FROM backtest_baseline WHERE model_name = %(model)s AND model_version = %(version)s;
