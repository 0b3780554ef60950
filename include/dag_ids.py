"""The DAG ids, written once: the DAG files, the gateway, the status view and the dev stack use these
names (they are part of the public interface: run ids, URLs, the Airflow UI). Imports nothing."""

CALENDAR_SYNC_DAG = "advoware_calendar_sync"
BETEILIGTE_SYNC_DAG = "beteiligte_sync"
# one employee at once, started by a change (Google notification, a write through the proxy)
CALENDAR_EMPLOYEE_SYNC_DAG = "advoware_calendar_sync_employee"
