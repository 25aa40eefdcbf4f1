SELECT model_version FROM alerts WHERE model_name = %(model)s AND kind = 'performance' AND status <> 'resolved';
