"""Airflow DAG: the sensreport audit after the nightly retraining.

Copy into your DAGs folder; it works with Airflow 2 (2.4 or later) and Airflow 3. The
task fails (and Airflow retries or alerts) when `sensreport run` exits non-zero: 1 a
check failed, 2 bad spec, 3 a computation failed.
"""

from datetime import datetime, timedelta

try:  # Airflow 3: DAGs are written against the Task SDK
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

try:  # Airflow 3 (and Airflow 2 with apache-airflow-providers-standard): the standard provider
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

with DAG(
    dag_id="sensreport_nightly",
    schedule="30 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 0, "retry_delay": timedelta(minutes=10)},
    tags=["model-audit"],
) as dag:
    audit = BashOperator(
        task_id="sensitivity_audit",
        cwd="/srv/sensreport",
        bash_command="sensreport run examples/scheduled/nightly.yaml --quiet",
    )
