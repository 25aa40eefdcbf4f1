-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d), as $POSTGRES_USER in
-- $POSTGRES_DB (airflow, the Airflow metadata database): the second database holds ModelWatch's monitoring data
-- (sql/migrations, applied by the airflow-init service).
CREATE DATABASE modelwatch;
