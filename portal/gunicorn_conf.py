"""gunicorn's settings for the portal: `gunicorn -c python:portal.gunicorn_conf portal.wsgi`.

Everything else (bind address, workers) stays on gunicorn's command line or its environment variables
(`PORT`, `WEB_CONCURRENCY`, `GUNICORN_CMD_ARGS`).
"""

from gunicorn.glogging import Logger

from portal.log_redaction import RedactTokens

accesslog = "-"


class RedactingLogger(Logger):
    """gunicorn's logger, with project tokens redacted from the access and error logs (the Notification hook's
    `?token=` is in the request line)."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.access_log, self.error_log):
            if not any(isinstance(existing, RedactTokens) for existing in log.filters):
                log.addFilter(RedactTokens())


logger_class = RedactingLogger
