"""gunicorn's settings for the portal: `gunicorn -c python:portal.gunicorn_conf portal.wsgi`.

Everything else (bind address) stays on gunicorn's command line or its environment variables (`PORT`,
`GUNICORN_CMD_ARGS`); `--workers` on the command line wins over `workers` here.
"""

import os

from gunicorn.glogging import Logger

from portal import env
from portal.log_redaction import RedactTokens

accesslog = "-"

# Sync workers, one more than the CPUs: a stage callback waits on PostgreSQL for about a sixth of its time, and the
# extra worker uses the CPU meanwhile. benchmarks/callbacks.py on 2 CPUs (PostgreSQL and wrk on them too): 3
# workers beat 2, and 4 or 5 did worse than 3: they fight over the CPUs. WEB_CONCURRENCY sets another number.
workers = env.read_int(os.environ, "WEB_CONCURRENCY", (os.cpu_count() or 1) + 1, minimum=1)


class RedactingLogger(Logger):
    """gunicorn's logger, with project tokens redacted from the access and error logs (the Notification hook's
    `?token=` is in the request line)."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.access_log, self.error_log):
            if not any(isinstance(existing, RedactTokens) for existing in log.filters):
                log.addFilter(RedactTokens())


logger_class = RedactingLogger
