"""gunicorn's own settings: its log lines in the same structured form as the
app's (telemetry/logs.py), chosen by LOG_FORMAT / LOG_LEVEL like every process;
its own refusals in the API's one JSON error body (common/errors.py)."""

import json
import socket

from gunicorn import util

from mms.env import load_service_env
from telemetry import logs

_service = load_service_env()
logconfig_dict = logs.logging_config(_service.log_format, _service.log_level)


def _write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """What gunicorn refuses before Django sees the request (a request line past
    limit_request_line: 414, headers past their limits: 431, a request it cannot
    parse: 400) answers {"status", "code", "message", "errors"}, not gunicorn's
    HTML page. Set here, in the master, so every forked worker has it."""
    body = json.dumps(
        {
            "status": status_int,
            "code": reason.lower().replace(" ", "_"),
            "message": mesg or reason,
            "errors": {},
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin1") + body)


# gunicorn has no setting for its error page; its workers call util.write_error
# (gunicorn 27.0.1, pinned), so that is the one place to give it the JSON body.
util.write_error = _write_json_error
