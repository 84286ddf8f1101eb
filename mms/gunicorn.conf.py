"""gunicorn's own settings: its log lines in the same structured form as the
app's (telemetry/logs.py), chosen by LOG_FORMAT / LOG_LEVEL like every process."""

from mms.env import load_service_env
from telemetry import logs

_service = load_service_env()
logconfig_dict = logs.logging_config(_service.log_format, _service.log_level)
